"""One set of numbers: /stats agrees with the Features API and with an independent spatial
join, and never shows a group of fewer than k people."""

from __future__ import annotations

import csv
import io
from collections import Counter

import h3
import httpx
import pytest
import shapely
from shapely.geometry import mapping

from gis.hexagons import FINEST_RES
from tests.oracle import read_layer

K = 10
FILTERS = {  # indicator -> (layer, the same condition as a client's CQL2 filter)
    "cameras": ("cameras", None),
    "cameras_offline": ("cameras", "status = 'offline'"),
    "key_places": ("key_places", None),
    "schools": ("key_places", "category IN ('school', 'kindergarten')"),
    "buildings": ("buildings", None),
    "urban_components": ("urban_components", None),
    "components_needing_repair": ("urban_components", "status IN ('damaged', 'missing')"),
}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def stats(http, **params):
    response = http.get("/stats", params=params)
    assert response.status_code == 200, response.text[:400]
    return response.json()


def test_the_registry_lists_every_indicator_with_its_definition(http):
    body = http.get("/stats/indicators").json()
    ids = {i["id"] for i in body["indicators"]}
    assert set(FILTERS) <= ids and "residents" in ids
    for indicator in body["indicators"]:
        assert indicator["definition"] and indicator["unit"] and indicator["owner"]


@pytest.mark.parametrize("indicator", sorted(FILTERS))
def test_city_totals_equal_the_features_apis_number_matched(http, indicator):
    layer, condition = FILTERS[indicator]
    params = {"limit": 1} | ({"filter": condition} if condition else {})
    matched = http.get(f"/collections/{layer}/items", params=params).json()["numberMatched"]
    body = stats(http, indicator=indicator)
    assert body["total"] == matched
    assert sum(g["value"] for g in body["groups"]) == matched


@pytest.mark.parametrize("indicator, layer", [("cameras", "cameras"), ("buildings", "buildings")])
def test_counts_by_grid_equal_an_independent_spatial_join(http, store, indicator, layer):
    grids = read_layer(store, "grids")
    tree = shapely.STRtree([g.geom for g in grids])
    expected: Counter = Counter()
    for row in read_layer(store, layer):
        point = shapely.point_on_surface(row.geom)
        hits = [i for i in tree.query(point, predicate="intersects")]
        assert len(hits) >= 1, row.id
        expected[grids[min(hits)].props["grid_code"]] += 1
    body = stats(http, indicator=indicator, by="grid")
    assert {g["key"]: g["value"] for g in body["groups"]} == dict(expected)


def test_floor_area_is_the_sum_of_the_buildings_floor_area(http, store):
    expected = sum(r.props["floor_area_m2"] or 0 for r in read_layer(store, "buildings"))
    assert stats(http, indicator="floor_area")["total"] == pytest.approx(expected, rel=1e-9)


def test_h3_cells_are_the_parents_of_the_stored_cells(http, store):
    res = 8
    expected: Counter = Counter()
    for row in read_layer(store, "cameras"):
        cell = h3.latlng_to_cell(row.geom.y, row.geom.x, FINEST_RES)
        expected[h3.cell_to_parent(cell, res)] += 1
    body = stats(http, indicator="cameras", by="h3", res=res)
    assert {g["key"]: g["value"] for g in body["groups"]} == dict(expected)


def test_people_are_shown_in_groups_of_at_least_k_and_totals_reconcile(http, store):
    residents = read_layer(store, "population")
    for area in ("grid", "street", "district"):
        body = stats(http, indicator="residents", by=area)
        assert body["k"] == K
        assert all(g["value"] >= K for g in body["groups"])
        withheld = body["suppressed"]["value"]
        assert withheld is None or withheld == 0 or withheld >= K
        if withheld is not None:
            assert body["total"] == len(residents)


def test_small_cells_of_key_persons_are_withheld(http, store):
    body = stats(http, indicator="key_persons", by="h3", res=9)
    truth = Counter(
        h3.cell_to_parent(h3.latlng_to_cell(r.geom.y, r.geom.x, FINEST_RES), 9)
        for r in read_layer(store, "population")
        if r.props["key_category"] is not None
    )
    assert any(0 < v < K for v in truth.values()), "the demo city should have small cells"
    shown = {g["key"]: g["value"] for g in body["groups"]}
    assert all(v >= K and truth[key] == v for key, v in shown.items())
    assert body["suppressed"]["groups"] >= sum(1 for v in truth.values() if 0 < v < K)


def test_nested_polygons_never_differ_by_fewer_than_k_people(http, store):
    minx, miny, maxx, maxy = store.layer_meta("population").bbox
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    values = []
    for radius in (0.01, 0.012, 0.02, 0.03):
        polygon = shapely.Point(cx, cy).buffer(radius)
        response = http.post("/stats", json={"indicator": "residents", "polygon": mapping(polygon)})
        assert response.status_code == 200, response.text[:300]
        values.append(response.json()["groups"][0]["value"])
    for inner, outer in zip(values, values[1:]):
        assert outer - inner == 0 or outer - inner >= K


def test_csv_rows_sum_to_the_json_total(http):
    response = http.get("/stats", params={"indicator": "cameras", "by": "street", "f": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sum(float(r["value"] or 0) for r in rows) == stats(http, indicator="cameras")["total"]


@pytest.mark.parametrize(
    "params, status, fragment",
    [
        ({}, 400, "indicator"),
        ({"indicator": "nope"}, 404, "nope"),
        ({"indicator": "cameras", "by": "country"}, 400, "by"),
        ({"indicator": "cameras", "by": "h3"}, 400, "res"),
        ({"indicator": "cameras", "by": "h3", "res": "x"}, 400, "res"),
        ({"indicator": "cameras", "by": "h3", "res": "15"}, 400, "res"),
        ({"indicator": "cameras", "f": "xml"}, 400, "csv"),
    ],
)
def test_bad_questions_get_a_problem_naming_what_is_wrong(http, params, status, fragment):
    response = http.get("/stats", params=params)
    assert response.status_code == status
    assert fragment in response.json()["detail"]


def test_bad_polygons_are_refused(http):
    for body in ({"indicator": "residents", "polygon": {"type": "Point", "coordinates": [1, 2]}}, "[1]"):
        response = http.post("/stats", json=body)
        assert response.status_code == 400, response.text
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    response = http.post("/stats", json={"indicator": "residents", "polygon": bowtie})
    assert response.status_code == 400 and "valid" in response.json()["detail"]
