"""GDAL's OGCAPI driver, the generic OGC API - Tiles client, finds OneMap's vector tiles by their links.

The GDAL here is the one inside the pyogrio wheel OneMap already depends on (3.12): Debian 12's
gdal-bin (3.6.2) is built without the driver's vector-tile reader (its libgdal holds none of that
code's strings, e.g. "vectorType"), so `ogrinfo OGCAPI:... -oo API=TILES` fails there on any server
(checked against OneMap with a TMS 1.0 document too). GDAL starts at the collection (or, for the
dataset tileset, at `/tiles`), follows `tilesets-vector`, picks a tileset, follows `tiling-scheme`
and the tile template, and reads the tiles of every level as one layer per zoom level.

GDAL runs in a process of its own, as any outside client does: pyogrio's read keeps the GIL while
GDAL fetches, so in the test's process it would wait on a server that cannot answer.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

pytest.importorskip("pyogrio")

pytestmark = pytest.mark.clients

# prints {"layers": [...], "fields": [...], "points": [[x, y], ...], "geometries": n} for one level
_CLIENT = r"""
import json, sys
import pyogrio, shapely
from pyogrio.raw import read
url, level = sys.argv[1], sys.argv[2]
out = {"layers": [name for name, _ in pyogrio.list_layers(url)]}
if level:
    meta, _, geometry, _ = read(url, layer=f"Zoom level {level}", API="TILES", TILEMATRIXSET="WorldCRS84Quad")
    shapes = shapely.from_wkb([g for g in geometry if g is not None])
    out["fields"] = list(meta["fields"])
    out["geometries"] = len(geometry)
    out["points"] = [[s.x, s.y] for s in shapes if s.geom_type == "Point"]
print(json.dumps(out))
"""


def gdal(url: str, level: int | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, "" if level is None else str(level)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_gdal_reads_a_collections_features_from_its_vector_tiles(live_server):
    collection = "key_places"
    url = f"OGCAPI:{live_server}/collections/{collection}"
    tileset = httpx.get(f"{live_server}/collections/{collection}/tiles/WorldCRS84Quad", timeout=30).json()
    own = next(layer for layer in tileset["layers"] if layer["id"] == collection)
    # the first level that carries every point: above the layer's first level hexagons stand for
    # them, and its first three levels thin points to one per cell (tiles.generalise)
    level = int(own["minTileMatrix"]) + 3
    read = gdal(url, level)
    assert f"Zoom level {level}" in read["layers"]
    # a point near a tile's edge is in its neighbour's buffer too: the same place, read twice
    points = {(round(x, 6), round(y, 6)) for x, y in read["points"]}
    items = httpx.get(f"{live_server}/collections/{collection}/items", params={"f": "json", "limit": 10_000}, timeout=60).json()
    assert items["numberMatched"] == len(items["features"]) > 0
    expected = [tuple(f["geometry"]["coordinates"]) for f in items["features"]]
    # an MVT coordinate is quantised to 1/4096 of the tile's width
    tolerance = 360 / 2 ** (level + 1) / 4096
    matched = {min(expected, key=lambda e: abs(e[0] - x) + abs(e[1] - y)) for x, y in points}
    assert all(min(abs(e[0] - x) + abs(e[1] - y) for e in expected) <= 2 * tolerance for x, y in points)
    assert len(matched) == len(expected)  # every place is in the tiles, none is missing


def test_gdal_opens_the_dataset_tileset_of_the_whole_city(live_server):
    read = gdal(f"OGCAPI:{live_server}/tiles", 9)
    assert "Zoom level 9" in read["layers"], read["layers"]
    # the city at level 9 (a few tiles): districts, streets and the hexagons of the point layers
    assert read["geometries"] > 20
    assert "mvt_id" in read["fields"]
