"""Real OGC API clients read OneMap as they read any OAPIF server: GDAL, OWSLib, QGIS.

Each talks to a live OneMap over HTTP, on both backends, and must see exactly the features the
server says it has (numberMatched).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from owslib.ogcapi.features import Features

pytestmark = pytest.mark.clients

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-qgis binds to it


def number_matched(base: str, collection: str) -> int:
    body = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1}, timeout=60).json()
    return body["numberMatched"]


def published(base: str) -> list[str]:
    return [c["id"] for c in httpx.get(f"{base}/collections", timeout=60).json()["collections"]]


def run(cmd: list[str], timeout: int = 300) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd[0]} failed: {done.stderr[-2000:]}"
    return done.stdout


def test_gdal_lists_every_collection_with_the_servers_counts(live_server):
    listing = run(["ogrinfo", "-ro", "-q", f"OAPIF:{live_server}"])
    listed = set(re.findall(r"^\d+: (\w+)", listing, re.MULTILINE))
    assert listed == set(published(live_server))
    for collection in sorted(listed):
        summary = run(["ogrinfo", "-ro", "-so", f"OAPIF:{live_server}", collection])
        count = int(re.search(r"Feature Count: (\d+)", summary).group(1))
        assert count == number_matched(live_server, collection), collection


@pytest.mark.parametrize("collection", ["cameras", "grids"])
def test_ogr2ogr_copies_a_whole_collection_to_a_geopackage(live_server, tmp_path, collection):
    target = tmp_path / f"{collection}.gpkg"
    run(["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{live_server}", collection])
    summary = run(["ogrinfo", "-ro", "-so", str(target), collection])
    assert int(re.search(r"Feature Count: (\d+)", summary).group(1)) == number_matched(live_server, collection)


def test_owslib_pages_through_every_collection_and_gets_every_feature_once(live_server):
    client = Features(live_server)
    ids_in_api = {c["id"] for c in client.collections()["collections"]}
    assert ids_in_api == set(published(live_server))
    for collection in sorted(ids_in_api):
        expected = number_matched(live_server, collection)
        seen: list = []
        offset, page = 0, 1000
        while True:
            body = client.collection_items(collection, limit=page, offset=offset)
            seen += [f["id"] for f in body["features"]]
            if body["numberReturned"] < page:
                break
            offset += page
        assert len(seen) == expected == len(set(seen)), collection


def test_qgis_reads_every_collection_as_an_oapif_layer(live_server):
    collections = published(live_server)
    out = run([SYSTEM_PYTHON, str(HERE / "clients" / "qgis_oapif.py"), live_server, *collections], timeout=600)
    report = json.loads(out.strip().splitlines()[-1])
    for collection in collections:
        entry = report[collection]
        assert entry["valid"], entry
        expected = number_matched(live_server, collection)
        assert entry["read"] == entry["distinct"] == expected, (collection, entry)
        assert entry["crs"] in ("EPSG:4490", "OGC:CRS84", "EPSG:4326"), entry
