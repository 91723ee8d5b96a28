"""OGC API - Features over real HTTP, on both backends: what any OAPIF client may rely on.

Expected answers come from tests/oracle.py (every row read with one SELECT, evaluated with
shapely), never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pyproj
import pytest
import shapely
from shapely.geometry import box, shape

from tests.oapif import all_items
from tests.oracle import public_props, read_layer, readable_layers

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
QGIS_FILTER_CLASSES = {
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def get_json(http, url, status=200, **params):
    response = http.get(url, params=params)
    assert response.status_code == status, response.text[:500]
    return response.json()


def normalise(value):
    """Dates and datetimes compare as instants, whatever offset notation a backend prints."""
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if len(value) > 10 else parsed.date()
        except ValueError:
            return value
    return value


# -- discovery -----------------------------------------------------------------------------------


def test_landing_page_links_the_api_conformance_and_collections(http):
    body = get_json(http, "/")
    rels = {link["rel"] for link in body["links"]}
    assert {"service-desc", "conformance", "data"} <= rels


def test_conformance_declares_every_class_qgis_needs_before_filtering(http):
    classes = set(get_json(http, "/conformance")["conformsTo"])
    assert QGIS_FILTER_CLASSES <= classes
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes
    # Part 4 is declared exactly to callers who may edit some layer (tests/test_edits_api.py);
    # the anonymous public may edit nothing, so QGIS must not offer it edits that would fail
    assert not any("ogcapi-features-4" in c for c in classes)


def test_collections_list_every_published_layer_and_never_the_population(http, store):
    # agg_*: indicator aggregates (tests/test_aggregate_collections.py), not layers
    ids = {c["id"] for c in get_json(http, "/collections")["collections"] if not c["id"].startswith("agg_")}
    assert ids == {layer.id for layer in readable_layers(store)}
    assert "population" not in ids
    assert all("." not in i for i in ids)  # QGIS cannot load dotted collection ids
    assert http.get("/collections/population").status_code == 404


def test_each_collection_declares_storage_crs_and_the_crs_it_serves(http, store):
    for layer in readable_layers(store):
        body = get_json(http, f"/collections/{layer.id}")
        assert body["storageCrs"] == EPSG.format(4490)
        for code in (4326, 3857, 4490, 4549, 4528):
            assert EPSG.format(code) in body["crs"]
        assert CRS84 in body["crs"]


def test_queryables_list_public_attributes_only(http, store):
    body = get_json(http, "/collections/cameras/queryables")
    names = set(body["properties"])
    assert {"status", "owner_dept", "installed_at"} <= names
    assert "stream_url" not in names


# -- items: paging and counts ----------------------------------------------------------------------


def test_default_page_is_ten_and_counts_are_exact(http, store):
    for layer in readable_layers(store):
        body = get_json(http, f"/collections/{layer.id}/items")
        expected = len(read_layer(store, layer.id))
        assert body["numberMatched"] == expected
        assert body["numberReturned"] == len(body["features"]) == min(10, expected)


def test_following_next_links_returns_every_feature_exactly_once(http, store):
    for layer_id in ("cameras", "key_places", "grids"):
        ids = [f["id"] for f in all_items(http, layer_id)]
        expected = [row.id for row in read_layer(store, layer_id)]
        assert sorted(ids) == expected
        assert len(ids) == len(set(ids))


def test_next_links_page_by_id_and_agree_with_offset_pages(http):
    first = get_json(http, "/collections/urban_components/items", limit=7)
    href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    query = dict(parse_qsl(urlsplit(href).query))
    assert query["offset"] == "7" and query["after"] == str(first["features"][-1]["id"])
    by_cursor = http.get(href).json()
    by_offset = get_json(http, "/collections/urban_components/items", limit=7, offset=7)
    assert [f["id"] for f in by_cursor["features"]] == [f["id"] for f in by_offset["features"]]
    assert by_cursor["numberMatched"] == first["numberMatched"]


def test_a_cursor_alone_starts_after_that_id(http, store):
    ids = [row.id for row in read_layer(store, "cameras")]
    pivot = ids[len(ids) // 2]
    body = get_json(http, "/collections/cameras/items", after=pivot, limit=5)
    assert [f["id"] for f in body["features"]] == [i for i in ids if i > pivot][:5]


def test_sorted_pages_link_by_offset_only(http):
    body = get_json(http, "/collections/key_places/items", sortby="-capacity", limit=5)
    href = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert "after=" not in href


def test_default_output_is_crs84_and_says_so(http):
    response = http.get("/collections/cameras/items", params={"limit": 1})
    assert response.headers["Content-Crs"].strip("<>") == CRS84


def test_a_limit_above_the_maximum_is_throttled_not_refused(http, live_server_settings):
    body = get_json(http, "/collections/urban_components/items", limit=10**7)
    assert body["numberReturned"] <= live_server_settings.server.max_items


def test_attributes_are_the_public_ones_with_their_stored_values(http, store):
    rows = {row.id: row for row in read_layer(store, "cameras")}
    body = get_json(http, "/collections/cameras/items", limit=50)
    for feature in body["features"]:
        expected = public_props(store, "cameras", rows[feature["id"]])
        got = feature["properties"]
        assert {k: normalise(v) for k, v in got.items()} == {k: normalise(v) for k, v in expected.items()}
        assert "stream_url" not in got
        assert shape(feature["geometry"]).equals_exact(rows[feature["id"]].geom, 1e-9)


def test_single_item_and_unknown_item(http, store):
    first = read_layer(store, "key_places")[0]
    body = get_json(http, f"/collections/key_places/items/{first.id}")
    assert body["id"] == first.id
    problem = get_json(http, "/collections/key_places/items/999999999", status=404)
    assert problem["status"] == 404 and problem["detail"]
    assert http.get("/collections/key_places/items/abc").status_code == 404


# -- bbox, properties, sortby, datetime --------------------------------------------------------------


def city_window(store, layer_id, fraction=0.3):
    """A window of `fraction` of the layer's extent, centred where its features are densest
    (their median), so it always holds some."""
    minx, miny, maxx, maxy = store.layer_meta(layer_id).bbox
    w, h = (maxx - minx) * fraction, (maxy - miny) * fraction
    points = [shapely.point_on_surface(r.geom) for r in read_layer(store, layer_id)]
    cx = sorted(p.x for p in points)[len(points) // 2]
    cy = sorted(p.y for p in points)[len(points) // 2]
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@pytest.mark.parametrize("layer_id", ["cameras", "buildings"])
def test_bbox_returns_exactly_the_features_that_meet_it(http, store, layer_id):
    window = city_window(store, layer_id, 0.1)
    expected = sorted(r.id for r in read_layer(store, layer_id) if r.geom.intersects(box(*window)))
    got = sorted(f["id"] for f in all_items(http, layer_id, bbox=",".join(map(str, window))))
    assert got == expected and expected


def test_bbox_in_gauss_kruger_selects_what_the_same_area_in_lonlat_selects(http, store):
    window = city_window(store, "cameras", 0.1)
    to_gk = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:4549", always_xy=True)
    # EPSG:4549's axes are northing, easting: bbox corners follow that order
    e0, n0 = to_gk.transform(window[0], window[1])
    e1, n1 = to_gk.transform(window[2], window[3])
    area_gk = shapely.ops.transform(lambda x, y: to_gk.transform(x, y), box(*window))
    inner = area_gk.buffer(-20).bounds  # stay clear of the curved edges of the transformed box
    back = pyproj.Transformer.from_crs("EPSG:4549", "OGC:CRS84", always_xy=True)
    inner_lonlat = shapely.ops.transform(lambda x, y: back.transform(x, y), box(*inner))
    got = {
        f["id"]
        for f in all_items(http, "cameras", bbox=f"{inner[1]},{inner[0]},{inner[3]},{inner[2]}", **{"bbox-crs": EPSG.format(4549)})
    }
    must = {r.id for r in read_layer(store, "cameras") if inner_lonlat.buffer(-1e-5).contains(r.geom)}
    assert must <= got
    assert e0 < e1 and n0 < n1


def test_property_selection_returns_only_the_named_properties(http):
    body = get_json(http, "/collections/cameras/items", properties="status,owner_dept", limit=5)
    for feature in body["features"]:
        assert set(feature["properties"]) <= {"status", "owner_dept"}


@pytest.mark.parametrize("order", ["+", "-"])
def test_sortby_orders_by_the_property_and_keeps_every_feature(http, store, order):
    features = all_items(http, "key_places", sortby=f"{order}capacity")
    capacities = [f["properties"]["capacity"] for f in features]
    present = [c for c in capacities if c is not None]
    assert present == sorted(present, reverse=order == "-")
    assert len(features) == len(read_layer(store, "key_places"))


def test_datetime_interval_selects_cameras_installed_in_it(http, store):
    start, end = dt.datetime(2018, 1, 1, tzinfo=dt.UTC), dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    expected = sorted(
        r.id
        for r in read_layer(store, "cameras")
        if r.props["installed_at"] and start <= normalise(r.props["installed_at"]) <= end
    )
    got = sorted(f["id"] for f in all_items(http, "cameras", datetime="2018-01-01T00:00:00Z/2020-12-31T23:59:59Z"))
    assert got == expected


# -- CRS (Part 2) ------------------------------------------------------------------------------------


def test_gauss_kruger_output_round_trips_within_a_centimetre(http, store):
    rows = read_layer(store, "cameras")[:20]
    ids = ",".join(str(r.id) for r in rows)
    response = http.get(
        "/collections/cameras/items", params={"crs": EPSG.format(4549), "filter": f"id IN ({ids})", "limit": 50}
    )
    if response.status_code == 400:  # id may not be queryable: fall back to single items
        features = [get_json(http, f"/collections/cameras/items/{r.id}", crs=EPSG.format(4549)) for r in rows]
    else:
        assert response.headers["Content-Crs"].strip("<>") == EPSG.format(4549)
        features = response.json()["features"]
    back = pyproj.Transformer.from_crs("EPSG:4549", "EPSG:4490")  # authority order both ways
    geod = pyproj.Geod(ellps="GRS80")
    by_id = {r.id: r for r in rows}
    for feature in features:
        northing, easting = feature["geometry"]["coordinates"]
        assert 3_000_000 < northing < 5_000_000 and 200_000 < easting < 800_000
        lat, lon = back.transform(northing, easting)
        original = by_id[feature["id"]].geom
        _, _, metres = geod.inv(lon, lat, original.x, original.y)
        assert metres < 0.01


@pytest.mark.parametrize("code", [4326, 4490])
def test_geographic_epsg_output_is_latitude_first(http, store, code):
    row = read_layer(store, "cameras")[0]
    feature = get_json(http, f"/collections/cameras/items/{row.id}", crs=EPSG.format(code))
    lat, lon = feature["geometry"]["coordinates"]
    assert abs(lat - row.geom.y) < 1e-6 and abs(lon - row.geom.x) < 1e-6


def test_web_mercator_output_and_content_crs_header(http, store):
    row = read_layer(store, "cameras")[0]
    response = http.get(f"/collections/cameras/items/{row.id}", params={"crs": EPSG.format(3857)})
    assert response.status_code == 200
    x, y = response.json()["geometry"]["coordinates"]
    ex, ey = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:3857", always_xy=True).transform(row.geom.x, row.geom.y)
    assert abs(x - ex) < 0.01 and abs(y - ey) < 0.01
    assert EPSG.format(3857) in response.headers["Content-Crs"]


# -- CQL2 (Part 3) -------------------------------------------------------------------------------------


def cql_cases(store):
    cams = read_layer(store, "cameras")
    places = read_layer(store, "key_places")
    centre = city_window(store, "key_places", 0.2)
    poly = box(*centre)
    return [
        ("cameras", "status = 'offline'", [r.id for r in cams if r.props["status"] == "offline"]),
        (
            "cameras",
            "status = 'online' AND owner_dept IN ('transport','education')",
            [r.id for r in cams if r.props["status"] == "online" and r.props["owner_dept"] in ("transport", "education")],
        ),
        (
            "key_places",
            "capacity BETWEEN 100 AND 500",
            [r.id for r in places if r.props["capacity"] is not None and 100 <= r.props["capacity"] <= 500],
        ),
        ("key_places", "name LIKE '%学校%'", [r.id for r in places if "学校" in (r.props["name"] or "")]),
        (
            "key_places",
            f"S_INTERSECTS(geometry, {poly.wkt})",
            [r.id for r in places if r.geom.intersects(poly)],
        ),
        (
            "key_places",
            f"category = 'school' AND NOT S_WITHIN(geometry, {poly.wkt})",
            [r.id for r in places if r.props["category"] == "school" and not r.geom.within(poly)],
        ),
    ]


def test_cql2_text_filters_match_hand_checked_answers(http, store):
    for layer_id, expression, expected in cql_cases(store):
        got = sorted(f["id"] for f in all_items(http, layer_id, filter=expression, **{"filter-lang": "cql2-text"}))
        assert got == sorted(expected), expression
    assert any(expected for _, _, expected in cql_cases(store))


def test_cql2_json_filter_in_a_get_request(http, store):
    expression = {"op": "and", "args": [
        {"op": "=", "args": [{"property": "status"}, "offline"]},
        {"op": "in", "args": [{"property": "owner_dept"}, ["public_security", "transport"]]},
    ]}
    expected = sorted(
        r.id for r in read_layer(store, "cameras")
        if r.props["status"] == "offline" and r.props["owner_dept"] in ("public_security", "transport")
    )
    got = sorted(f["id"] for f in all_items(http, "cameras", filter=json.dumps(expression), **{"filter-lang": "cql2-json"}))
    assert got == expected


def test_filtered_number_matched_counts_the_filter(http, store):
    expected = sum(1 for r in read_layer(store, "cameras") if r.props["status"] == "offline")
    body = get_json(http, "/collections/cameras/items", filter="status = 'offline'", limit=1)
    assert body["numberMatched"] == expected


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("/collections/nowhere/items", "nowhere"),
        ("/collections/cameras/items?bbox=1,2,3", "4 or 6"),
        ("/collections/cameras/items?bbox=120,37,119,36", "exceeds"),
        ("/collections/cameras/items?bbox=nan,1,2,3", "finite"),
        ("/collections/cameras/items?limit=abc", "limit"),
        ("/collections/cameras/items?offset=-4", "offset"),
        ("/collections/cameras/items?filter=" + quote("nosuch = 1"), "nosuch"),
        ("/collections/cameras/items?filter=" + quote("status = "), "filter"),
        ("/collections/cameras/items?filter=" + quote("stream_url = 'x'"), "stream_url"),
        ("/collections/cameras/items?filter-lang=sql&filter=1", "filter-lang"),
        ("/collections/cameras/items?crs=EPSG:9999", "crs"),
        ("/collections/cameras/items?sortby=nosuch", "sortby"),
        ("/collections/cameras/items?after=x1", "after"),
        ("/collections/cameras/items?datetime=yesterday", "datetime"),
        ("/collections/cameras/items?bbox-crs=" + quote(EPSG.format(4549)) + "&bbox=1,2,3,4", "area of use"),
        ("/collections/cameras/items?filter=" + quote("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"), "self-intersection"),
        ("/collections/cameras/items?filter=" + quote(" AND ".join(["status = 'online'"] * 600)), "filter"),
    ],
)
def test_bad_requests_get_a_problem_naming_what_is_wrong(http, url, fragment):
    response = http.get(url)
    assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code
    assert fragment.lower() in (problem["detail"]).lower(), problem


def test_html_pages_render(http):
    for url in ("/", "/collections", "/collections/cameras", "/collections/cameras/items"):
        response = http.get(url, params={"f": "html"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
