"""gzip over real HTTP, on both backends: tiles stored and sent gzipped to clients that take it and
plain to those that do not, with an ETag and a 304 per encoding; large text answers gzipped, small
ones not; an edit's If-Match still holds after a gzipped GET.

httpx would decode gzip by itself: these tests read the bytes off the wire (`iter_raw`) and decode
them here, so what is checked is what the server sent.
"""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from tests.edit_city import build
from tests.oracle import read_layer
from tests.tiles_support import decode, tile_of

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def raw(http, url: str, headers: dict, method: str = "GET", **params) -> tuple[httpx.Response, bytes]:
    with http.stream(method, url, headers=headers, params=params or None) as response:
        return response, b"".join(response.iter_raw())


def dense_tile(http, store, z: int = 15) -> str:
    """The URL of a tile holding many buildings, found from the landing page's TileJSON."""
    landing = http.get("/", params={"f": "json"}).json()
    tilejson = next((l["href"] for l in landing["links"] if l.get("rel") == "describedby"), None)
    template = http.get(tilejson or "/tiles/WebMercatorQuad/tilejson.json").json()["tiles"][0]
    rows = read_layer(store, "buildings")
    point = rows[len(rows) // 2].geom.representative_point()
    x, y = tile_of(point.x, point.y, z)
    return template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))


def test_a_tile_gzipped_and_plain_is_the_same_vector_tile(http, store):
    url = dense_tile(http, store)
    plain, plain_bytes = raw(http, url, PLAIN)
    zipped, zipped_bytes = raw(http, url, GZIP)  # a hit now: the fast path
    assert plain.status_code == zipped.status_code == 200
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped_bytes[:2] == b"\x1f\x8b" and len(zipped_bytes) < len(plain_bytes)
    assert int(zipped.headers["content-length"]) == len(zipped_bytes)
    assert int(plain.headers["content-length"]) == len(plain_bytes)
    assert gzip.decompress(zipped_bytes) == plain_bytes
    assert decode(plain_bytes)["buildings"], "a tile with buildings in it"
    for response in (plain, zipped):
        assert "accept-encoding" in response.headers["vary"].lower()
    assert plain.headers["etag"] != zipped.headers["etag"], "one strong ETag per encoding"


def test_a_miss_answered_gzipped_first_is_the_same_tile(http, store):
    url = dense_tile(http, store, 16)
    zipped, zipped_bytes = raw(http, url, GZIP)  # no other test asks for this tile: rendered now
    plain, plain_bytes = raw(http, url, PLAIN)
    assert zipped.headers["content-encoding"] == "gzip" and gzip.decompress(zipped_bytes) == plain_bytes


def test_304_per_encoding(http, store):
    url = dense_tile(http, store)
    plain = http.get(url, headers=PLAIN)
    zipped = http.get(url, headers=GZIP)
    assert http.get(url, headers={**PLAIN, "If-None-Match": plain.headers["etag"]}).status_code == 304
    assert http.get(url, headers={**GZIP, "If-None-Match": zipped.headers["etag"]}).status_code == 304
    # a client holding the other encoding's bytes gets the bytes it asked for, not a 304
    crossed, body = raw(http, url, {**GZIP, "If-None-Match": plain.headers["etag"]})
    assert crossed.status_code == 200 and crossed.headers["content-encoding"] == "gzip" and body[:2] == b"\x1f\x8b"
    crossed = http.get(url, headers={**PLAIN, "If-None-Match": zipped.headers["etag"]})
    assert crossed.status_code == 200 and crossed.content == plain.content
    not_modified = http.get(url, headers={**GZIP, "If-None-Match": zipped.headers["etag"]})
    assert not_modified.headers["etag"] == zipped.headers["etag"] and "accept-encoding" in not_modified.headers["vary"].lower()


def test_head_of_a_tile_tells_the_length_of_each_encoding(http, store):
    url = dense_tile(http, store)
    _, zipped_bytes = raw(http, url, GZIP)
    head = http.head(url, headers=GZIP)
    assert head.headers["content-encoding"] == "gzip" and int(head.headers["content-length"]) == len(zipped_bytes)
    plain = http.head(url, headers=PLAIN)
    assert "content-encoding" not in plain.headers and int(plain.headers["content-length"]) == len(http.get(url, headers=PLAIN).content)


@pytest.mark.parametrize("accept", ["gzip;q=0", "br", "identity", "deflate, gzip;q=0, *;q=0"])
def test_clients_that_refuse_gzip_get_plain_tiles(http, store, accept):
    url = dense_tile(http, store)
    response, body = raw(http, url, {"Accept-Encoding": accept})
    assert "content-encoding" not in response.headers and body[:2] != b"\x1f\x8b"
    decode(body)


def test_a_large_features_page_is_gzipped_and_the_same_document(http):
    collections = http.get("/collections").json()
    buildings = next(c for c in collections["collections"] if c["id"] == "buildings")
    items = next(l["href"] for l in buildings["links"] if l["rel"] == "items" and "geo+json" in l.get("type", ""))
    zipped, zipped_bytes = raw(http, items, GZIP, limit=1000)
    plain, plain_bytes = raw(http, items, PLAIN, limit=1000)
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert int(zipped.headers["content-length"]) == len(zipped_bytes) < len(plain_bytes) / 3
    assert "accept-encoding" in zipped.headers["vary"].lower() and "accept-encoding" in plain.headers["vary"].lower()
    unzipped, document = json.loads(gzip.decompress(zipped_bytes)), json.loads(plain_bytes)
    assert [f["id"] for f in unzipped["features"]] == [f["id"] for f in document["features"]]
    assert unzipped["features"] == document["features"]
    html, html_bytes = raw(http, items, GZIP, limit=50, f="html")
    assert html.headers["content-encoding"] == "gzip" and b"<html" in gzip.decompress(html_bytes).lower()


def test_small_answers_are_not_gzipped(http):
    for url in ("/healthz", "/collections/no_such_layer"):
        response, body = raw(http, url, GZIP)
        assert "content-encoding" not in response.headers, url
        assert len(body) < 1024 and body[:2] != b"\x1f\x8b"


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("compression"), "compression")
    yield built
    cleanup()


def test_if_match_works_after_a_gzipped_get(city):
    """The item's ETag names the stored row, not the bytes: the gzipped GET's ETag is the one an
    edit must send (a suffixed ETag on gzipped answers made every browser edit fail with 412)."""
    fid = read_layer(city.store, "urban_components")[5].id
    url = f"/collections/urban_components/items/{fid}"
    with city.client(city.staff) as staff:
        page, page_bytes = raw(staff, url, GZIP, f="html")  # the item's HTML page: over 1 KB, gzipped
        assert page.headers["content-encoding"] == "gzip" and page_bytes[:2] == b"\x1f\x8b"
        plain = staff.get(url, headers=PLAIN)
        assert page.headers["etag"] == plain.headers["etag"]
        patched = staff.patch(
            url, json={"properties": {"status": "damaged"}},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": page.headers["etag"]},
        )
        assert patched.status_code == 204, patched.text
        assert staff.get(url).json()["properties"]["status"] == "damaged"
        stale = staff.patch(
            url, json={"properties": {"status": "normal"}},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": page.headers["etag"]},
        )
        assert stale.status_code == 412, "and a stale one is still refused"


def test_static_assets_are_gzipped_but_never_a_range_of_them(http):
    import re

    page = http.get("/collections", params={"f": "html"}, headers=PLAIN).text
    asset = next(m for m in re.findall(r'(?:href|src)="([^"]+)"', page) if "/vendor/" in m and m.endswith((".js", ".css")))
    plain, plain_bytes = raw(http, asset, PLAIN)
    assert plain.status_code == 200 and len(plain_bytes) > 1024, asset
    zipped, zipped_bytes = raw(http, asset, GZIP)
    assert zipped.headers["content-encoding"] == "gzip" and gzip.decompress(zipped_bytes) == plain_bytes
    part, part_bytes = raw(http, asset, {**GZIP, "Range": "bytes=0-99"})
    assert part.status_code == 206 and "content-encoding" not in part.headers, "a range counts plain bytes"
    assert part_bytes == plain_bytes[:100]


def test_a_cache_file_of_plain_tiles_starts_over_and_gzipped_ones_stay(tmp_path):
    import sqlite3

    from tiles.cache import DiskCache, Entry

    path = tmp_path / "tiles.sqlite"
    DiskCache(path)  # today's layout, then made to look like a file of before: plain tiles, user_version 0
    key = ("cameras", "WebMercatorQuad", 15, 1, 2, "")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO tiles VALUES ('cameras', 'WebMercatorQuad', 15, 1, 2, '', '\"e1\"', 0, ?)", (b"\x1a\x05plain",))
        conn.execute("PRAGMA user_version = 0")
    disk = DiskCache(path)
    assert disk.get(key) is None and disk.count() == 0, "plain tiles are not served as gzip: the file starts over"
    disk.put(key, Entry(b"\x1a\x05a tile" * 100, '"e2"'), disk.last_seq())
    disk.flush()
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT data FROM tiles").fetchone()
    assert bytes(stored)[:2] == b"\x1f\x8b", "stored gzipped"
    assert gzip.decompress(stored) == b"\x1a\x05a tile" * 100
    again = DiskCache(path).get(key)
    assert again == Entry(b"\x1a\x05a tile" * 100, '"e2"') and again.gz == bytes(stored), "kept when opened again"
