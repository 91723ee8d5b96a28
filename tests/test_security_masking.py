"""Desensitization, output by output: a masked value is its class's mask and never the original,
in GeoJSON, HTML, CSV, tiles (both renderers: PostGIS's ST_AsMVT and the GeoPackage path) and
PMTiles exports; a secret attribute appears in none of them.

The server here runs tests/roles/masked_population.yml, where the anonymous caller reads
residents masked; the masks are checked against tests/security_support's own Python rules.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles

from tests.oracle import read_layer
from tests.security_support import MASKERS, client, masked_as_expected, security_server
from tests.tiles_support import decode, tile_of

ROLES = Path(__file__).resolve().parent / "roles" / "masked_population.yml"
SENSITIVE = ("name", "national_id", "phone", "address")


@pytest.fixture(scope="module")
def http(store):
    with security_server(store, roles_file=ROLES) as base, client(base) as c:
        yield c


@pytest.fixture(scope="module")
def residents(store):
    return {r.id: r for r in read_layer(store, "population")}


@pytest.fixture(scope="module")
def some(residents):
    """Residents with every personal attribute filled, a key category among them."""
    chosen = [r for r in residents.values() if all(r.props[n] for n in SENSITIVE)][:40]
    keyed = [r for r in residents.values() if r.props["key_category"] and r not in chosen][:5]
    return chosen + keyed


def originals(rows) -> set[str]:
    return {str(r.props[n]) for r in rows for n in (*SENSITIVE, "key_category") if r.props[n]}


def test_the_rules_mask_each_class_as_documented():
    assert MASKERS["person_name"]("张三丰") == "张**"
    assert MASKERS["national_id"]("37028319800101123X") == "370283********123X"
    assert MASKERS["phone"]("13812341234") == "138****1234"
    assert MASKERS["address"]("平度市李园街道天津路81号1号楼1单元101室") == "平度市李园街道天津路81号1号楼"


def test_geojson_items_are_masked_and_carry_no_secret(http, store, some):
    layer = store.catalog["population"]
    ids = ",".join(str(r.id) for r in some)
    body = http.get("/collections/population/items", params={"filter": f"id IN ({ids})", "limit": 100}).json()
    assert len(body["features"]) == len(some)
    by_id = {r.id: r for r in some}
    for feature in body["features"]:
        assert "key_category" not in feature["properties"]
        masked_as_expected(layer, feature["properties"], by_id[feature["id"]].props)
        single = http.get(f"/collections/population/items/{feature['id']}").json()
        assert single["properties"] == feature["properties"]


def test_html_and_csv_never_show_an_original(http, some):
    ids = ",".join(str(r.id) for r in some)
    secrets = originals(some)
    html = http.get("/collections/population/items", params={"filter": f"id IN ({ids})", "limit": 100, "f": "html"})
    assert html.status_code == 200 and "**" in html.text
    assert not [s for s in secrets if s in html.text]
    for row in some[:5]:
        page = http.get(f"/collections/population/items/{row.id}", params={"f": "html"}).text
        assert not [s for s in originals([row]) if s in page]
    csv_response = http.get("/collections/population/items", params={"filter": f"id IN ({ids})", "limit": 100, "f": "csv"})
    if csv_response.status_code == 200:
        assert "****" in csv_response.text and not [s for s in secrets if s in csv_response.text]
    else:  # a format the server does not offer is refused cleanly, never a raw dump
        assert csv_response.status_code == 400 and csv_response.headers["content-type"].startswith("application/problem+json")


def test_masked_attributes_cannot_be_queried_back(http, some):
    row = some[0]
    for params in ({"filter": f"national_id = '{row.props['national_id']}'"}, {"phone": row.props["phone"]},
                   {"filter": f"name LIKE '{row.props['name'][0]}%'"}, {"sortby": "national_id"},
                   {"filter": "key_category IS NOT NULL"}):
        response = http.get("/collections/population/items", params=params)
        assert response.status_code == 400, params


def test_tiles_are_masked_exactly_as_items(http, store, some):
    layer = store.catalog["population"]
    row = some[0]
    x, y = tile_of(row.geom.x, row.geom.y, 16)
    for url in (f"/collections/population/tiles/WebMercatorQuad/16/{y}/{x}", f"/tiles/WebMercatorQuad/16/{y}/{x}"):
        response = http.get(url)
        assert response.status_code == 200, url
        features = decode(response.content)["population"]
        assert row.id in features
        residents = {r.id: r for r in read_layer(store, "population") if r.id in features}
        for fid, feature in features.items():
            assert "key_category" not in feature["properties"]
            masked_as_expected(layer, feature["properties"], residents[fid].props)
        if url.startswith("/collections"):  # the dataset tile also holds streets and villages named like people
            leaked = [s for s in originals(residents.values()) if len(s) > 2 and s.encode() in response.content]
            assert not leaked


def test_pmtiles_exports_are_masked(store, some, tmp_path, repo_root):
    row = some[0]
    bbox = f"{row.geom.x - 0.002},{row.geom.y - 0.002},{row.geom.x + 0.002},{row.geom.y + 0.002}"
    out = tmp_path / "population.pmtiles"
    env = {**os.environ, "ONEMAP_DATABASE_URL": store.settings.database.database_url,
           "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name, "ONEMAP_ROLES_FILE": str(ROLES),
           "PYTHONPATH": str(repo_root)}
    command = [sys.executable, "-c", "from gis.cli import main; main(prog_name='onemap')", "export", str(out),
               "--tileset", "population", "--minzoom", "16", "--maxzoom", "16", "--bbox", bbox]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=repo_root, env=env)
    assert run.returncode == 0, run.stderr[-800:]
    layer = store.catalog["population"]
    residents = {r.id: r for r in read_layer(store, "population")}
    seen = 0
    with open(out, "rb") as f:
        reader = Reader(MmapSource(f))
        for _, data in all_tiles(reader.get_bytes):
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            for fid, feature in decode(data).get("population", {}).items():
                masked_as_expected(layer, feature["properties"], residents[fid].props)
                assert "key_category" not in feature["properties"]
                seen += 1
    assert seen > 0
