"""After an edit, every number moves together at once: the hexagons of the heatmap tiles (each
cell once, by id), /stats (city and by cell) and the Features API's numberMatched.

The edits go through the store's writer (gis.edit.writer), which invalidates tiles as the HTTP
edits do; the test restores what it changed, so the session's city is the same afterwards.
"""

from __future__ import annotations


import h3
import httpx
import pytest
import shapely

from gis.app.factory import create_app
from gis.catalog import AttrType
from gis.hexagons import FINEST_RES
from tests.conftest import LiveServer, free_port, settings_for
from tests.heatmap_support import hexagons, resolution_of
from tests.oracle import read_layer

K = 10
ZOOMS = (10, 12)


@pytest.fixture(scope="module")
def server(store):
    port = free_port()
    settings = settings_for(store.settings.database.database_url, port=port)
    settings.server.base_url = f"http://127.0.0.1:{port}"
    app = create_app(settings, store)
    with LiveServer(app, port) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        yield http, app.state.edits.writer


@pytest.fixture(scope="module")
def city(store):
    return store.layer_meta("districts").bbox


def stats(http, **params) -> dict:
    response = http.get("/stats", params=params)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def numbers(http, city, indicator: str, layer: str | None) -> dict:
    """Every figure of one indicator: per zoom the hexagons by cell, /stats, numberMatched."""
    out: dict = {"total": stats(http, indicator=indicator)["total"]}
    if layer is not None:
        out["matched"] = http.get(f"/collections/{layer}/items", params={"limit": 1}).json()["numberMatched"]
    for z in ZOOMS:
        cells = hexagons(http, f"/collections/h3_{indicator}/tiles", f"h3_{indicator}", city, z)
        res = resolution_of(cells)
        by_cell = stats(http, indicator=indicator, by="h3", res=res)
        assert {c: p["count"] for c, p in cells.items()} == {g["key"]: g["value"] for g in by_cell["groups"]}
        out[z] = (res, {c: p["count"] for c, p in cells.items()}, by_cell["suppressed"]["value"])
    return out


def cell_of(point: shapely.Point, res: int) -> str:
    return h3.cell_to_parent(h3.latlng_to_cell(point.y, point.x, FINEST_RES), res)


def values_like(store, layer: str, row) -> dict:
    """A new feature's attributes: an existing one's, without the times (their types differ by backend)."""
    kinds = {a.name: a.type for a in store.catalog[layer].attributes}
    return {k: v for k, v in row.props.items() if v is not None and kinds[k] not in (AttrType.date, AttrType.datetime)}


def moved(before: dict, after: dict, changes: dict[str, int]) -> None:
    """`after` is `before` with each cell's count changed by `changes` (cell -> delta)."""
    expected = dict(before)
    for cell, delta in changes.items():
        expected[cell] = expected.get(cell, 0) + delta
        if expected[cell] == 0:
            del expected[cell]
    assert after == expected


def test_creating_moving_and_deleting_a_key_place_moves_every_number_together(server, store, city):
    http, writer = server
    rows = read_layer(store, "key_places")
    here, there = rows[0].geom, rows[-1].geom
    before = numbers(http, city, "key_places", "key_places")

    created = writer.create("key_places", here, values_like(store, "key_places", rows[0]))
    after = numbers(http, city, "key_places", "key_places")
    assert after["total"] == after["matched"] == before["total"] + 1 == before["matched"] + 1
    for z in ZOOMS:
        res = before[z][0]
        moved(before[z][1], after[z][1], {cell_of(here, res): +1})

    writer.patch("key_places", created.id, there, {})
    after_move = numbers(http, city, "key_places", "key_places")
    assert after_move["total"] == after_move["matched"] == before["total"] + 1
    for z in ZOOMS:
        res = before[z][0]
        moved(before[z][1], after_move[z][1], {cell_of(there, res): +1})

    writer.delete("key_places", created.id)
    assert numbers(http, city, "key_places", "key_places") == before


def test_a_new_resident_moves_the_city_total_and_the_reconciled_hexagons(server, store, city):
    http, writer = server
    rows = read_layer(store, "population")
    someone = rows[len(rows) // 2]
    before = numbers(http, city, "residents", None)
    values = values_like(store, "population", someone) | {"person_id": "TEST-HEATMAP-1"}
    created = writer.create("population", someone.geom, values)
    try:
        after = numbers(http, city, "residents", None)
        assert after["total"] == before["total"] + 1
        for z in ZOOMS:
            res, cells, withheld = after[z]
            assert all(v >= K for v in cells.values())
            if withheld is not None:
                assert sum(cells.values()) + withheld == after["total"]
            home = cell_of(someone.geom, res)
            if home in before[z][1]:  # a cell already shown shows one more
                assert cells[home] == before[z][1][home] + 1
    finally:
        writer.delete("population", created.id)
    assert numbers(http, city, "residents", None) == before


def test_tiles_cached_before_an_edit_are_not_served_after_it(server, store, city):
    """A hexagon reaches beyond the written point: tiles it crosses are dropped too."""
    http, writer = server
    rows = read_layer(store, "key_places")
    point = rows[len(rows) // 3].geom
    z = 10
    first = hexagons(http, "/collections/h3_key_places/tiles", "h3_key_places", city, z)  # now cached
    res = resolution_of(first)
    home = cell_of(point, res)
    created = writer.create("key_places", point, values_like(store, "key_places", rows[0]))
    try:
        # every tile the cell's hexagon crosses carries the new count (hexagons() checks they agree)
        again = hexagons(http, "/collections/h3_key_places/tiles", "h3_key_places", city, z)
        assert again[home]["count"] == first.get(home, {"count": 0})["count"] + 1
    finally:
        writer.delete("key_places", created.id)

