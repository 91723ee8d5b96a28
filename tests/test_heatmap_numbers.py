"""One set of numbers: the hexagons of the heatmap tiles, /stats and the Features API agree, at
several zooms and H3 resolutions, on both backends, and move together after an edit.

Expected values come from the Features API's numberMatched, /stats, and an independent reading
of the tables (tests/oracle.py) with the h3 library; never from tiles/.
"""

from __future__ import annotations

from collections import Counter

import h3
import httpx
import pytest
import shapely

from gis.hexagons import FINEST_RES
from tests.heatmap_support import close, density, hexagons, resolution_of
from tests.oracle import read_layer

K = 10
ZOOMS = (8, 10, 12)
# indicator -> (source layer, its condition as a client's CQL2 filter); people are unpublished
# (test sessions run under tests/roles/mechanics.yml, where the anonymous caller sees cameras)
INDICATORS = {
    "cameras": ("cameras", None),
    "cameras_offline": ("cameras", "status = 'offline'"),
    "schools": ("key_places", "category IN ('school', 'kindergarten')"),
    "key_places": ("key_places", None),
    "urban_components": ("urban_components", None),
    "buildings": ("buildings", None),
    "floor_area": ("buildings", None),
    "residents": ("population", None),
    "key_persons": ("population", "key_category IS NOT NULL"),
}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def city(store):
    return store.layer_meta("districts").bbox


def stats(http, **params) -> dict:
    response = http.get("/stats", params=params)
    assert response.status_code == 200, response.text[:400]
    return response.json()


def matched(http, layer: str, condition: str | None) -> int:
    params = {"limit": 1} | ({"filter": condition} if condition else {})
    response = http.get(f"/collections/{layer}/items", params=params)
    assert response.status_code == 200, response.text[:300]
    return response.json()["numberMatched"]


def truth(store, layer: str, keep=lambda row: True) -> list:
    return [r for r in read_layer(store, layer) if keep(r)]


@pytest.mark.parametrize("z", ZOOMS)
@pytest.mark.parametrize("indicator", ["cameras", "cameras_offline", "schools", "key_places", "urban_components", "buildings"])
def test_hexagon_counts_add_up_to_stats_and_number_matched(http, city, indicator, z):
    layer, condition = INDICATORS[indicator]
    cells = hexagons(http, f"/collections/h3_{indicator}/tiles", f"h3_{indicator}", city, z)
    total = stats(http, indicator=indicator)["total"]
    assert sum(p["count"] for p in cells.values()) == total == matched(http, layer, condition)
    res = resolution_of(cells)
    by_cell = stats(http, indicator=indicator, by="h3", res=res)
    assert {c: p["count"] for c, p in cells.items()} == {g["key"]: g["value"] for g in by_cell["groups"]}
    for cell, props in cells.items():
        assert close(props["density"], density(props["count"], cell))


@pytest.mark.parametrize("z", ZOOMS)
def test_floor_area_hexagons_carry_count_sum_and_density(http, store, city, z):
    cells = hexagons(http, "/collections/h3_floor_area/tiles", "h3_floor_area", city, z)
    buildings = truth(store, "buildings")
    res = resolution_of(cells)
    expected: Counter = Counter()
    for row in buildings:
        point = shapely.point_on_surface(row.geom)
        cell = h3.cell_to_parent(h3.latlng_to_cell(point.y, point.x, FINEST_RES), res)
        expected[cell] += row.props["floor_area_m2"] or 0
    assert sum(p["count"] for p in cells.values()) == len(buildings) == matched(http, "buildings", None)
    assert set(cells) == set(expected)
    for cell, props in cells.items():
        assert close(props["sum"], expected[cell])
        assert close(props["density"], density(expected[cell], cell))
    assert close(sum(p["sum"] for p in cells.values()), stats(http, indicator="floor_area")["total"])


@pytest.mark.parametrize("z", (*ZOOMS, 13))
@pytest.mark.parametrize("indicator", ["residents", "key_persons"])
def test_hexagons_of_people_are_the_cells_stats_shows_and_the_suppressed_reconcile(http, store, city, indicator, z):
    cells = hexagons(http, f"/collections/h3_{indicator}/tiles", f"h3_{indicator}", city, z)
    res = resolution_of(cells) if cells else {8: 5, 10: 7, 12: 8, 13: 9}[z]
    keep = (lambda r: r.props["key_category"] is not None) if indicator == "key_persons" else (lambda r: True)
    people = truth(store, "population", keep)
    real = Counter(
        h3.cell_to_parent(h3.latlng_to_cell(r.geom.y, r.geom.x, FINEST_RES), res) for r in people
    )
    assert all(p["count"] >= K for p in cells.values()), "a hexagon of fewer than k people was sent"
    assert all(real[c] == p["count"] for c, p in cells.items())
    by_cell = stats(http, indicator=indicator, by="h3", res=res)
    assert {c: p["count"] for c, p in cells.items()} == {g["key"]: g["value"] for g in by_cell["groups"]}
    withheld = by_cell["suppressed"]["value"]
    city_total = stats(http, indicator=indicator)["total"]
    assert city_total == len(people)
    if withheld is not None:  # None: what is withheld would itself be below k, so it is not told
        assert sum(p["count"] for p in cells.values()) + withheld == city_total
        assert withheld == 0 or withheld >= K
    if any(0 < v < K for v in real.values()):
        assert by_cell["suppressed"]["groups"] > 0


@pytest.mark.parametrize("indicator, layer", [("key_places", "key_places"), ("urban_components", "urban_components")])
def test_stats_by_grid_equal_an_independent_spatial_join(http, store, indicator, layer):
    grids = read_layer(store, "grids")
    tree = shapely.STRtree([g.geom for g in grids])
    expected: Counter = Counter()
    for row in read_layer(store, layer):
        hits = tree.query(shapely.point_on_surface(row.geom), predicate="intersects")
        expected[grids[min(hits)].props["grid_code"]] += 1
    body = stats(http, indicator=indicator, by="grid")
    assert {g["key"]: g["value"] for g in body["groups"]} == dict(expected)


def test_resident_groups_by_grid_are_the_spatial_join_where_shown(http, store):
    grids = read_layer(store, "grids")
    tree = shapely.STRtree([g.geom for g in grids])
    expected: Counter = Counter()
    for row in read_layer(store, "population"):
        hits = tree.query(row.geom, predicate="intersects")
        expected[grids[min(hits)].props["grid_code"]] += 1
    body = stats(http, indicator="residents", by="grid")
    shown = {g["key"]: g["value"] for g in body["groups"]}
    assert all(expected[key] == value >= K for key, value in shown.items())
    hidden = sum(v for key, v in expected.items() if key not in shown)
    assert body["suppressed"]["value"] in (hidden, None)
