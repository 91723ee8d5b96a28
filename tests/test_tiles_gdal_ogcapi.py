"""GDAL's OGCAPI driver, the generic OGC API - Tiles client, finds OneMap's vector tiles by their links.

The GDAL here is the one inside the pyogrio wheel OneMap already depends on (3.12): Debian 12's
gdal-bin (3.6.2) is built without the driver's vector-tile reader (its libgdal holds none of that
code's strings, e.g. "vectorType"), so `ogrinfo OGCAPI:... -oo API=TILES` fails there on any server
(checked against OneMap with a TMS 1.0 document too). GDAL starts at the collection (or, for the
dataset tileset, at `/tiles`), follows `tilesets-vector`, picks a tileset, follows `tiling-scheme`
and the tile template, and reads the tiles of every level as one layer per zoom level.

As the public, staff and admin (the shipped roles; a key travels as GDAL's bearer token): staff and
admin read the cameras, which the public is refused. GDAL runs in a process of its own, as any outside client does: pyogrio's read keeps the GIL while
GDAL fetches, so in the test's process it would wait on a server that cannot answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.security_support import api_key, security_server

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


ROLES = ("public", "staff", "admin")


@pytest.fixture(scope="module")
def server(store):
    """The app under the shipped roles: cameras are the staff's and the admin's, not the public's."""
    with security_server(store) as url:
        yield url


@pytest.fixture(scope="module", params=ROLES)
def caller(request, store) -> tuple[str, dict]:
    """(role, the headers its requests carry): GDAL sends the key as every request's bearer token."""
    if request.param == "public":
        return "public", {}
    return request.param, {"Authorization": f"Bearer {api_key(store, request.param, subject=f'gdal-{request.param}')}"}


def gdal(url: str, level: int | None = None, headers: dict | None = None) -> dict:
    env = dict(os.environ)
    if headers:
        # GDAL's own bearer authentication (GDAL >= 3.9), as a user of ogrinfo would set it
        env["GDAL_HTTP_AUTH"] = "BEARER"
        env["GDAL_HTTP_BEARER"] = headers["Authorization"].removeprefix("Bearer ")
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, "" if level is None else str(level)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_gdal_reads_a_collections_features_from_its_vector_tiles(server, caller):
    role, headers = caller
    # the cameras are the staff's and the admin's, not the public's
    collection = "key_places" if role == "public" else "cameras"
    url = f"OGCAPI:{server}/collections/{collection}"
    tileset = httpx.get(f"{server}/collections/{collection}/tiles/WorldCRS84Quad", headers=headers, timeout=30).json()
    own = next(layer for layer in tileset["layers"] if layer["id"] == collection)
    # the first level that carries every point: above the layer's first level hexagons stand for
    # them, and its first three levels thin points to one per cell (tiles.generalise)
    level = int(own["minTileMatrix"]) + 3
    read = gdal(url, level, headers)
    assert f"Zoom level {level}" in read["layers"]
    # a point near a tile's edge is in its neighbour's buffer too: the same place, read twice
    points = {(round(x, 6), round(y, 6)) for x, y in read["points"]}
    items = httpx.get(f"{server}/collections/{collection}/items", params={"f": "json", "limit": 10_000},
                      headers=headers, timeout=60).json()
    assert items["numberMatched"] == len(items["features"]) > 0
    expected = [tuple(f["geometry"]["coordinates"]) for f in items["features"]]
    # an MVT coordinate is quantised to 1/4096 of the tile's width
    tolerance = 360 / 2 ** (level + 1) / 4096

    def near(x, y, places) -> bool:
        return min(abs(px - x) + abs(py - y) for px, py in places) <= 2 * tolerance

    assert all(near(x, y, expected) for x, y in points)  # nothing is in the tiles that is not in /items
    assert all(near(x, y, points) for x, y in expected)  # and every place is in the tiles, none is missing


def test_gdal_opens_the_dataset_tileset_of_the_whole_city(server, caller):
    role, headers = caller
    read = gdal(f"OGCAPI:{server}/tiles", 9, headers)
    assert "Zoom level 9" in read["layers"], read["layers"]
    # the city at level 9 (a few tiles): districts, streets and the hexagons of the point layers
    assert read["geometries"] > 20
    assert "mvt_id" in read["fields"]


def test_gdal_is_refused_a_collection_its_role_may_not_read(server):
    with pytest.raises(AssertionError, match="(?i)not|404"):
        gdal(f"OGCAPI:{server}/collections/cameras", None)
