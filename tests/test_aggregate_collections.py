"""Aggregate collections (OGC API - Features, for QGIS): hexagons and grids carrying /stats'
numbers, suppressed the same way; their values plus `suppressed` give the /stats total."""

from __future__ import annotations

from collections import Counter

import h3
import httpx
import pytest
import shapely

from gis.hexagons import FINEST_RES
from tests.oapif import all_items
from tests.oracle import read_layer

K = 10
CASES = [  # (indicator, collection suffix, /stats parameters)
    ("residents", "h3_8", {"by": "h3", "res": 8}),
    ("residents", "grid", {"by": "grid"}),
    ("key_persons", "h3_9", {"by": "h3", "res": 9}),
    ("elderly_residents", "h3_7", {"by": "h3", "res": 7}),
    ("buildings", "h3_9", {"by": "h3", "res": 9}),
    ("floor_area", "grid", {"by": "grid"}),
    ("urban_components", "h3_8", {"by": "h3", "res": 8}),
]


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def stats(http, indicator, **params):
    response = http.get("/stats", params={"indicator": indicator, **params})
    assert response.status_code == 200, response.text[:300]
    return response.json()


def test_every_indicator_has_hexagon_and_grid_collections_without_dots(http):
    ids = {c["id"] for c in http.get("/collections", params={"f": "json"}).json()["collections"]}
    for indicator in http.get("/stats/indicators").json()["indicators"]:
        for suffix in ("h3_7", "h3_8", "h3_9", "grid"):
            assert f"agg_{indicator['id']}_{suffix}" in ids
    assert not any("." in i for i in ids)


@pytest.mark.parametrize("indicator, suffix, params", CASES)
def test_features_are_the_stats_groups_and_reconcile_with_the_total(http, indicator, suffix, params):
    collection = f"agg_{indicator}_{suffix}"
    first = http.get(f"/collections/{collection}/items", params={"limit": 1}).json()
    features = all_items(http, collection)
    by_area, city = stats(http, indicator, **params), stats(http, indicator)
    assert first["numberMatched"] == len(features) == len(by_area["groups"])
    assert {f["id"]: f["properties"]["value"] for f in features} == {g["key"]: g["value"] for g in by_area["groups"]}
    assert first["suppressed"] == by_area["suppressed"]
    if first["suppressed"]["value"] is not None:
        total = sum(f["properties"]["value"] for f in features) + first["suppressed"]["value"]
        assert total == pytest.approx(city["total"], rel=1e-12)


@pytest.mark.parametrize("indicator", ["residents", "key_persons"])
def test_no_feature_shows_fewer_than_k_people(http, indicator):
    features = all_items(http, f"agg_{indicator}_h3_9")
    assert features and min(f["properties"]["value"] for f in features) >= K


def test_hexagons_are_the_h3_cells_of_the_features_they_count(http, store):
    expected = Counter(
        h3.cell_to_parent(h3.latlng_to_cell(r.geom.y, r.geom.x, FINEST_RES), 8) for r in read_layer(store, "urban_components")
    )
    features = all_items(http, "agg_urban_components_h3_8")
    assert {f["id"]: f["properties"]["count"] for f in features} == dict(expected)
    for feature in features[:50]:
        shape = shapely.geometry.shape(feature["geometry"])
        lat, lon = h3.cell_to_latlng(feature["id"])
        assert shape.contains(shapely.Point(lon, lat))
        area = h3.cell_area(feature["id"], unit="km^2")
        assert feature["properties"]["area_km2"] == pytest.approx(area, rel=2e-3)
        assert feature["properties"]["density"] == pytest.approx(feature["properties"]["count"] / area, rel=2e-3)


def test_grid_features_have_the_grids_own_outlines(http, store):
    grids = {g.props["grid_code"]: g.geom for g in read_layer(store, "grids")}
    features = all_items(http, "agg_floor_area_grid")
    assert features
    for feature in features:
        shape = shapely.geometry.shape(feature["geometry"])
        assert shape.symmetric_difference(grids[feature["id"]]).area < 1e-9
        assert "sum" in feature["properties"] and "count" not in feature["properties"]


def test_bbox_keeps_the_hexagons_that_meet_it(http, store):
    features = all_items(http, "agg_buildings_h3_8")
    minx, miny, maxx, maxy = store.layer_meta("buildings").bbox
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    expected = {f["id"] for f in features if shapely.geometry.shape(f["geometry"]).intersects(shapely.box(*box))}
    page = http.get("/collections/agg_buildings_h3_8/items", params={"bbox": ",".join(map(str, box)), "limit": 10000}).json()
    assert page["numberMatched"] == len(expected)
    assert {f["id"] for f in page["features"]} == expected


def test_single_hexagons_and_bad_requests(http):
    key = http.get("/collections/agg_buildings_h3_8/items", params={"limit": 1}).json()["features"][0]["id"]
    assert http.get(f"/collections/agg_buildings_h3_8/items/{key}").json()["properties"]["key"] == key
    assert http.get("/collections/agg_buildings_h3_8/items/zz").status_code == 404
    refused = http.get("/collections/agg_buildings_h3_8/items", params={"filter": "value > 3"})
    assert refused.status_code == 400 and "aggregate" in refused.json()["detail"]
