"""Tile caching over HTTP: strong ETags and 304s, immutable answers for the current data version,
and invalidation after a write that drops exactly the tiles touching the written area.

Runs its own TileService (tests/tiles_server.py) with a disk cache in a temporary directory, over
the session's demo store. The "write" is a data-version bump in the store's layer metadata (no
row changes, so other tests see the same city); `invalidate(layer, bbox)` is what a writer calls.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from sqlalchemy import update

from tests.oracle import read_layer
from tests.tiles_server import free_port, serve
from tests.tiles_support import BUFFER, EXTENT, tile_lonlat_bounds, tile_of

WEB = "WebMercatorQuad"


@pytest.fixture(scope="module")
def tile_server(store, tmp_path_factory):
    with serve(store, free_port(), tmp_path_factory.mktemp("tile-cache")) as (url, service):
        with httpx.Client(base_url=url, timeout=60) as http:
            yield http, service


def city_centre(store) -> tuple[float, float]:
    """A camera in the middle of the list: a place with data around it."""
    cameras = read_layer(store, "cameras")
    point = cameras[len(cameras) // 2].geom
    return point.x, point.y


def test_etag_and_304(tile_server, store):
    http, _ = tile_server
    x, y = tile_of(*city_centre(store), 15)
    url = f"/collections/cameras/tiles/{WEB}/15/{y}/{x}"
    first = http.get(url)
    assert first.status_code == 200 and first.content
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"'), "a strong validator"
    again = http.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    listed = http.get(url, headers={"If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    other = http.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content and other.headers["etag"] == etag


def test_cache_control_is_immutable_only_for_the_current_version(tile_server, store):
    http, service = tile_server
    x, y = tile_of(*city_centre(store), 15)
    url = f"/collections/cameras/tiles/{WEB}/15/{y}/{x}"
    tilejson = http.get(f"/collections/cameras/tiles/{WEB}/tilejson.json").json()
    version = int(tilejson["tiles"][0].split("v=")[1])
    current = http.get(url, params={"v": version})
    assert "immutable" in current.headers["cache-control"] and "max-age=31536000" in current.headers["cache-control"]
    for params in ({}, {"v": version - 1}):
        response = http.get(url, params=params)
        assert response.status_code == 200
        assert "immutable" not in response.headers["cache-control"]
        assert "max-age=0" in response.headers["cache-control"]


def touches(z: int, x: int, y: int, bbox) -> bool | None:
    """Does the tile's buffered extent (64 units, plus the one unit the renderers search beyond it)
    meet bbox? None when the answer is within a hundredth of a unit of changing."""
    minx, miny, maxx, maxy = bbox
    verdicts = set()
    for slack in (-0.01, 0.01):
        tminx, tminy, tmaxx, tmaxy = tile_lonlat_bounds(z, x, y, BUFFER + 1 + slack)
        verdicts.add(tminx <= maxx and minx <= tmaxx and tminy <= maxy and miny <= tmaxy)
    return verdicts.pop() if len(verdicts) == 1 else None


def cgcs_touches(z: int, x: int, y: int, bbox) -> bool:
    span = 360 / 2**z
    pad = span * (BUFFER + 1) / EXTENT
    tminx, tmaxy = -180 + x * span - pad, 90 - y * span + pad
    tmaxx, tminy = -180 + (x + 1) * span + pad, 90 - (y + 1) * span - pad
    return tminx <= bbox[2] and bbox[0] <= tmaxx and tminy <= bbox[3] and bbox[1] <= tmaxy


def disk_keys(service) -> set[tuple]:
    service.cache.flush()  # tiles are written behind, in batches gathered for a moment
    with sqlite3.connect(service.cache.disk.path) as conn:
        return set(conn.execute("SELECT tileset, tms, z, x, y FROM tiles").fetchall())


def test_invalidate_drops_exactly_the_tiles_touching_the_bbox_and_bumps_the_urls(tile_server, store):
    http, service = tile_server
    lon, lat = city_centre(store)
    bbox = (lon - 0.002, lat - 0.0015, lon + 0.002, lat + 0.0015)  # a few hundred metres
    requested: list[tuple[str, str, int, int, int]] = []
    for z in range(12, 18):
        cx, cy = tile_of(lon, lat, z)
        for x in range(cx - 2, cx + 3):
            for y in range(cy - 2, cy + 3):
                for tileset in ("cameras", "onemap", "buildings"):
                    requested.append((tileset, WEB, z, x, y))
    for z in (13, 15):
        span = 360 / 2**z
        cx, cy = int((lon + 180) // span), int((90 - lat) // span)
        for x in range(cx - 1, cx + 2):
            for y in range(cy - 1, cy + 2):
                requested.append(("cameras", "CGCS2000Quad", z, x, y))
    for tileset, tms, z, x, y in requested:
        prefix = "/tiles" if tileset == "onemap" else f"/collections/{tileset}/tiles"
        assert http.get(f"{prefix}/{tms}/{z}/{y}/{x}").status_code in (200, 204)
    etags_before = {}
    for key in requested:
        tileset, tms, z, x, y = key
        prefix = "/tiles" if tileset == "onemap" else f"/collections/{tileset}/tiles"
        etags_before[key] = http.get(f"{prefix}/{tms}/{z}/{y}/{x}").headers["etag"]
    assert set(requested) <= disk_keys(service)
    old_urls = {t: http.get(f"{p}/{WEB}/tilejson.json").json()["tiles"][0] for t, p in
                (("cameras", "/collections/cameras/tiles"), ("onemap", "/tiles"), ("buildings", "/collections/buildings/tiles"))}

    # a write to cameras inside bbox: its data version moves, then the writer invalidates
    with store.engine.begin() as conn:
        conn.execute(update(store.meta).where(store.meta.c.layer == "cameras").values(version=store.meta.c.version + 1))
    service.invalidate("cameras", bbox)

    memory = {key[:5] for key in service.cache.memory._entries}
    disk = disk_keys(service)
    checked = 0
    for key in requested:
        tileset, tms, z, x, y = key
        if tileset == "buildings":
            expected_dropped = False  # buildings tiles do not carry cameras
        elif tms == "CGCS2000Quad":
            expected_dropped = cgcs_touches(z, x, y, bbox)
        else:
            expected_dropped = touches(z, x, y, bbox)
            if expected_dropped is None:
                continue
        checked += 1
        assert (key not in memory) == expected_dropped, (key, "memory")
        assert (key not in disk) == expected_dropped, (key, "disk")
    assert checked > 300
    assert any(key not in disk for key in requested) and any(key in disk for key in requested if key[0] == "cameras")

    new_urls = {t: http.get(f"{p}/{WEB}/tilejson.json").json()["tiles"][0] for t, p in
                (("cameras", "/collections/cameras/tiles"), ("onemap", "/tiles"), ("buildings", "/collections/buildings/tiles"))}
    for tileset in ("cameras", "onemap"):
        old_v, new_v = int(old_urls[tileset].split("v=")[1]), int(new_urls[tileset].split("v=")[1])
        assert new_v == old_v + 1, tileset
    assert new_urls["buildings"] == old_urls["buildings"]

    # the new URL resolves, immutable; an untouched tile keeps its bytes (served from the cache)
    version = int(new_urls["cameras"].split("v=")[1])
    untouched = next(k for k in requested if k[0] == "cameras" and k[1] == WEB and touches(*k[2:], bbox) is False)
    _, tms, z, x, y = untouched
    response = http.get(f"/collections/cameras/tiles/{tms}/{z}/{y}/{x}", params={"v": version})
    assert response.headers["etag"] == etags_before[untouched]
    assert "immutable" in response.headers["cache-control"]


def test_a_cache_file_of_the_old_layout_starts_over_and_takes_new_ones(tmp_path):
    from tiles.cache import DiskCache, Entry

    path = tmp_path / "tiles.sqlite"
    with sqlite3.connect(path) as conn:  # the layout before the rowid table: rows inside the key's B-tree
        conn.execute(
            "CREATE TABLE tiles (tileset TEXT NOT NULL, tms TEXT NOT NULL, z INTEGER NOT NULL, x INTEGER NOT NULL, "
            "y INTEGER NOT NULL, filter TEXT NOT NULL, etag TEXT NOT NULL, thinned INTEGER NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (tileset, tms, z, x, y, filter)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO tiles VALUES ('cameras', ?, 15, 1, 2, '', '\"e1\"', 0, ?)", (WEB, b"old tile"))
    disk = DiskCache(path)
    key = ("cameras", WEB, 15, 1, 2, "")
    assert disk.get(key) is None, "its tiles are plain bytes, from before tiles were stored gzipped: dropped"
    disk.put(key, Entry(b"new tile", '"e2"', 0), disk.last_seq())
    disk.put(("cameras", WEB, 15, 1, 3, ""), Entry(b"next", '"e3"', 0), disk.last_seq())
    disk.flush()
    assert disk.get(key) == Entry(b"new tile", '"e2"', 0), "a tile stored again replaces the old one"
    assert disk.count() == 2
    with sqlite3.connect(path) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='tiles'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql.upper()
    assert DiskCache(path).get(key) == Entry(b"new tile", '"e2"', 0), "opening it again changes nothing"


def _cache_of(directory, version: int, stamp: str | None):
    """A new process's tile cache over `directory`, synced with a store whose cameras are at `version`."""
    from tiles.cache import TileCache

    cache = TileCache(directory)
    cache.sync({"cameras": version}, lambda layer: [layer], {"cameras": stamp} if stamp else None)
    return cache


@pytest.mark.parametrize(
    ("version", "stamp", "kept"),
    [
        (5, "2026-12-07T10:00:00Z", True),  # the same store: its tiles serve the next process too
        (5, "2026-12-07T11:30:00Z", False),  # another store, built to the same version at another time
        (3, "2026-12-07T10:00:00Z", False),  # a version that went down: another store
    ],
)
def test_a_rebuilt_store_behind_the_same_cache_directory_gets_none_of_the_old_tiles(tmp_path, version, stamp, kept):
    from tiles.cache import Entry

    key = ("cameras", WEB, 15, 1, 2, "")
    first = _cache_of(tmp_path, 5, "2026-12-07T10:00:00Z")
    first.put(key, Entry(b"tile of the first store", '"e1"', 0), first.token())
    first.flush()
    later = _cache_of(tmp_path, version, stamp)
    assert (later.get(key) is not None) is kept
    assert (_cache_of(tmp_path, version, stamp).get(key) is not None) is kept, "and for every process after"


def test_a_cache_file_without_stamps_keeps_its_tiles(tmp_path):
    from tiles.cache import Entry

    key = ("cameras", WEB, 15, 1, 2, "")
    first = _cache_of(tmp_path, 5, None)
    first.put(key, Entry(b"tile", '"e1"', 0), first.token())
    first.flush()
    with sqlite3.connect(tmp_path / "tiles.sqlite") as conn:  # as written before stamps were recorded
        conn.execute("CREATE TABLE old AS SELECT layer, version FROM layer_versions")
        conn.execute("DROP TABLE layer_versions")
        conn.execute("ALTER TABLE old RENAME TO layer_versions")
    assert _cache_of(tmp_path, 5, "2026-12-07T10:00:00Z").get(key) is not None
