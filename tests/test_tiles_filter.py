"""`filter` on collection tiles: the same CQL2 as /items, the same answers, the same refusals."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.tiles_support import BUFFER, all_items, assert_problem, bbox_param, decode, tile_lonlat_bounds, tile_of

Z = 15  # cameras are not thinned from z15 (zoom.min 12 + 3)


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def busy_tile(http):
    """The z15 tile with most offline cameras."""
    counts: dict = {}
    for f in all_items(http, "cameras", filter="status='offline'", limit=10000):
        tile = tile_of(*f["geometry"]["coordinates"], Z)
        counts[tile] = counts.get(tile, 0) + 1
    assert counts, "the demo city has no offline camera"
    return max(sorted(counts), key=counts.get)


def tile_url(x, y, z=Z):
    return f"/collections/cameras/tiles/WebMercatorQuad/{z}/{y}/{x}"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("status='offline'", None),
        ("status = 'offline' AND owner_dept <> 'transport'", "cql2-text"),
        (json.dumps({"op": "=", "args": [{"property": "status"}, "offline"]}), "cql2-json"),
        ("fov_deg > 60 OR status = 'offline'", None),
    ],
    ids=["equality", "and", "cql2-json", "or-number"],
)
def test_filtered_tile_holds_what_items_returns_with_that_filter(http, busy_tile, text, lang):
    x, y = busy_tile
    params = {"filter": text, **({"filter-lang": lang} if lang else {})}
    response = http.get(tile_url(x, y), params=params)
    assert response.status_code == 200, response.text[:300]
    got = decode(response.content)["cameras"]
    inner = {f["id"] for f in all_items(http, "cameras", bbox=bbox_param(tile_lonlat_bounds(Z, x, y)), **params)}
    outer = {
        f["id"]: f
        for f in all_items(http, "cameras", bbox=bbox_param(tile_lonlat_bounds(Z, x, y, BUFFER + 1)), **params)
    }
    assert inner and inner <= set(got) <= set(outer)
    if text == "status='offline'":
        assert {f["properties"]["status"] for f in got.values()} == {"offline"}
        unfiltered = decode(http.get(tile_url(x, y)).content)["cameras"]
        assert {i for i, f in unfiltered.items() if f["properties"]["status"] == "offline"} == set(got)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"filter": "status = "}, ["filter", "parse"]),
        ({"filter": "stream_url = 'rtsp://x'"}, ["stream_url", "queryable"]),
        ({"filter": "no_such = 1"}, ["no_such"]),
        ({"filter": "fov_deg = 'wide'"}, ["fov_deg", "number"]),
        ({"filter": "status = 'offline'", "filter-lang": "sql"}, ["filter-lang"]),
        ({"filter-lang": "cql2-text"}, ["without a filter"]),
        ({"filter": "{not json", "filter-lang": "cql2-json"}, ["cql2-json"]),
    ],
    ids=["syntax", "secret-attribute", "unknown-property", "wrong-type", "unknown-lang", "lang-alone", "bad-json"],
)
def test_a_bad_filter_is_refused_as_items_refuses_it(http, busy_tile, params, words):
    x, y = busy_tile
    tile = assert_problem(http.get(tile_url(x, y), params=params), 400, *words)
    items = http.get("/collections/cameras/items", params=params)
    assert items.status_code == 400, "tiles and /items must refuse the same filters"
    assert tile["detail"]


def test_filter_is_refused_on_the_dataset_tiles(http, busy_tile):
    x, y = busy_tile
    assert_problem(http.get(f"/tiles/WebMercatorQuad/{Z}/{y}/{x}", params={"filter": "status='offline'"}), 400, "collection")


def test_a_filter_matching_nothing_gives_an_empty_tile(http, busy_tile):
    x, y = busy_tile
    response = http.get(tile_url(x, y), params={"filter": "status = 'offline' AND status = 'online'"})
    assert response.status_code == 204 and response.content == b""
