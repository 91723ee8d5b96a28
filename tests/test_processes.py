"""OGC API - Processes: the `aggregate` process answers what /stats answers, with the same
suppression and the same protection against differencing polygons."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import shapely
from shapely.geometry import mapping

from tests.oracle import read_layer

K = 10
PROCESSES_CORE = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def execute(http, status=200, **inputs):
    response = http.post("/processes/aggregate/execution", json={"inputs": inputs})
    assert response.status_code == status, response.text[:400]
    return response.json()


def without_indicator(body):
    return {k: v for k, v in body.items() if k != "indicator"}


def test_the_process_is_listed_described_and_declared(http):
    listed = http.get("/processes").json()["processes"]
    assert [p["id"] for p in listed] == ["aggregate"]
    assert any(link["rel"].endswith("/execute") for link in listed[0]["links"])
    described = http.get("/processes/aggregate").json()
    assert {"indicator", "layer", "filter", "by", "res", "polygon"} <= set(described["inputs"])
    assert "aggregate" in described["outputs"] and described["jobControlOptions"] == ["sync-execute"]
    assert PROCESSES_CORE in http.get("/conformance", params={"f": "json"}).json()["conformsTo"]


@pytest.mark.parametrize(
    "indicator, by, res",
    [("residents", "grid", None), ("key_persons", "h3", 9), ("buildings", "street", None), ("floor_area", "district", None)],
)
def test_an_indicator_gives_the_stats_answer(http, indicator, by, res):
    inputs = {"indicator": indicator, "by": by} | ({"res": res} if res is not None else {})
    expected = http.get("/stats", params=inputs).json()
    assert execute(http, **inputs) == expected


def test_a_layer_with_a_filter_counts_what_the_filter_selects(http, store):
    places = read_layer(store, "key_places")
    expected = Counter(r.props["street"] for r in places if r.props["category"] in ("school", "kindergarten"))
    body = execute(http, layer="key_places", filter="category IN ('school', 'kindergarten')", by="street")
    assert {g["key"]: g["value"] for g in body["groups"]} == dict(expected)
    assert without_indicator(body) == without_indicator(http.get("/stats", params={"indicator": "schools", "by": "street"}).json())


def test_people_counted_through_their_layer_are_suppressed_like_the_indicator(http):
    body = execute(http, layer="population", by="h3", res=9)
    assert body["k"] == K and all(g["value"] >= K for g in body["groups"])
    assert without_indicator(body) == without_indicator(http.get("/stats", params={"indicator": "residents", "by": "h3", "res": 9}).json())
    elderly = execute(http, indicator="elderly_residents", by="h3", res=9)
    assert all(g["value"] >= K for g in elderly["groups"]) and elderly["suppressed"]["groups"] > 0
    assert elderly == http.get("/stats", params={"indicator": "elderly_residents", "by": "h3", "res": 9}).json()


def test_a_client_filter_narrows_an_indicator(http, store):
    rows = read_layer(store, "urban_components")
    kind = rows[0].props["type_code"]
    expected = sum(1 for r in rows if r.props["status"] in ("damaged", "missing") and r.props["type_code"] == kind)
    body = execute(http, indicator="components_needing_repair", filter=f"type_code = '{kind}'")
    assert body["total"] == expected


def test_polygons_get_the_stats_answer_and_nested_ones_never_isolate_fewer_than_k(http, store):
    minx, miny, maxx, maxy = store.layer_meta("population").bbox
    centre = shapely.Point((minx + maxx) / 2, (miny + maxy) / 2)
    values = []
    for radius in (0.01, 0.012, 0.02, 0.03):
        polygon = mapping(centre.buffer(radius))
        body = execute(http, indicator="residents", polygon=polygon)
        assert body == http.post("/stats", json={"indicator": "residents", "polygon": polygon}).json()
        values.append(body["groups"][0]["value"])
    for inner, outer in zip(values, values[1:]):
        assert outer - inner == 0 or outer - inner >= K


def test_a_document_response_wraps_the_output(http):
    response = http.post(
        "/processes/aggregate/execution", json={"inputs": {"indicator": "buildings"}, "response": "document"}
    )
    output = response.json()["outputs"]["aggregate"]
    assert output["mediaType"] == "application/json" and output["value"]["total"] == http.get(
        "/stats", params={"indicator": "buildings"}
    ).json()["total"]


@pytest.mark.parametrize(
    "inputs, status, fragment",
    [
        ({}, 400, "either indicator"),
        ({"indicator": "buildings", "layer": "buildings"}, 400, "either indicator"),
        ({"indicator": "nope"}, 404, "nope"),
        ({"layer": "nope"}, 404, "nope"),
        ({"layer": "population", "filter": "national_id = '1'"}, 400, "national_id"),
        ({"layer": "buildings", "measure": "sum:address"}, 400, "address"),
        ({"indicator": "buildings", "by": "h3"}, 400, "res"),
        ({"indicator": "buildings", "by": "h3", "res": 13}, 400, "res"),
        ({"indicator": "buildings", "by": "country"}, 400, "by"),
        ({"indicator": "buildings", "colour": "red"}, 400, "colour"),
        ({"indicator": "residents", "polygon": {"type": "Point", "coordinates": [1, 2]}}, 400, "Polygon"),
    ],
)
def test_bad_inputs_get_a_problem_naming_what_is_wrong(http, inputs, status, fragment):
    response = http.post("/processes/aggregate/execution", json={"inputs": inputs})
    assert response.status_code == status, response.text[:300]
    assert fragment in response.json()["detail"]


def test_unknown_processes_and_bodies_that_are_not_json(http):
    assert http.get("/processes/buffer").status_code == 404
    assert http.post("/processes/buffer/execution", json={"inputs": {}}).status_code == 404
    response = http.post("/processes/aggregate/execution", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["detail"]
