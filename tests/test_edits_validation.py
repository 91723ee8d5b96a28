"""Every edit is checked before anything is written, on both backends: each refusal is a 4xx problem
that names what is wrong, and the layer is byte-for-byte what it was (table checksums)."""

from __future__ import annotations

import json

import pyproj
import pytest
import shapely

from tests.edit_city import build
from tests.oracle import read_layer
from tests.test_edits_api import checksum, new_component

UC = "urban_components"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
BOWTIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]  # crosses itself at (0.5, 0.5)


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("edits_validation"), "edits_validation")
    yield built
    cleanup()


@pytest.fixture(scope="module")
def admin(city):
    with city.client(city.admin) as client:
        yield client


@pytest.fixture(scope="module")
def centre(city):
    rows = read_layer(city.store, UC)
    return rows[len(rows) // 2].geom.coords[0]


def post(client, body, layer=UC, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(f"/collections/{layer}/items", content=data, headers={"Content-Type": "application/geo+json", **headers})


def refused(city, response, status, *words, layer=UC, before=None):
    assert response.status_code == status, response.text[:400]
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    if before is not None:
        assert checksum(city, layer) == before
    return detail


def bowtie_at(lon: float, lat: float, size: float = 0.0005) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon + x * size, lat + y * size] for x, y in BOWTIE]]}


def test_the_body_must_be_a_geojson_feature(city, admin, centre):
    before = checksum(city, UC)
    refused(city, post(admin, b"{not json"), 400, "not valid JSON", before=before)
    refused(city, post(admin, {"type": "FeatureCollection", "features": []}), 400, "GeoJSON Feature", before=before)
    no_geometry = new_component(*centre)
    no_geometry["geometry"] = None
    refused(city, post(admin, no_geometry), 400, "geometry is required", before=before)
    refused(city, post(admin, new_component(*centre), **{"Content-Type": "text/plain"}), 415, "application/geo+json", before=before)
    refused(city, post(admin, b"x" * 1_100_000), 413, "over", before=before)


def test_geometry_type_must_be_the_layers(city, admin, centre):
    before = checksum(city, UC)
    line = new_component(*centre)
    line["geometry"] = {"type": "LineString", "coordinates": [list(centre), [centre[0] + 0.001, centre[1]]]}
    refused(city, post(admin, line), 400, "Point", "LineString", before=before)
    three_d = new_component(*centre)
    three_d["geometry"]["coordinates"] = [centre[0], centre[1], 12.0]
    refused(city, post(admin, three_d), 400, "third coordinate", before=before)
    garbage = new_component(*centre)
    garbage["geometry"] = {"type": "Point", "coordinates": ["a", "b"]}
    refused(city, post(admin, garbage), 400, "geometry", before=before)


def test_a_self_intersecting_polygon_is_refused_with_shapelys_reason(city, admin):
    building = read_layer(city.store, "buildings")[0]
    before = checksum(city, "buildings")
    properties = {a.name: building.props[a.name] for a in city.store.catalog["buildings"].attributes if a.required}
    body = {"type": "Feature", "geometry": bowtie_at(*building.geom.centroid.coords[0]), "properties": properties}
    reason = shapely.is_valid_reason(shapely.geometry.shape(body["geometry"]))
    assert "Self-intersection" in reason
    refused(city, post(admin, body, layer="buildings"), 400, "not valid", reason.split("[")[0], layer="buildings", before=before)


def test_a_layer_that_says_so_stores_the_repaired_polygon(city, admin):
    street = read_layer(city.store, "streets")[0]
    layer = city.store.catalog["streets"]  # MultiPolygon: the bow-tie's repair, two triangles, fits
    properties = {a.name: street.props[a.name] for a in layer.attributes if a.required}
    body = {"type": "Feature", "geometry": bowtie_at(*street.geom.centroid.coords[0]), "properties": properties}
    response = post(admin, body, layer="streets")
    assert response.status_code == 201, response.text
    fid = int(response.headers["location"].rsplit("/", 1)[1])
    stored = next(r for r in read_layer(city.store, "streets") if r.id == fid).geom
    assert stored.is_valid and stored.geom_type == layer.geometry.value
    # the repair keeps the two triangles' area, half of the square the bow-tie spans
    assert stored.area == pytest.approx(0.5 * 0.0005**2, rel=1e-6)


def test_coordinates_must_be_inside_the_city(city, admin, centre):
    before = checksum(city, UC)
    refused(city, post(admin, new_component(centre[0] + 3, centre[1])), 400, "outside the city", before=before)
    # lat/lon sent as CRS84 (the classic axis mix-up) lands far away: refused, not stored
    refused(city, post(admin, new_component(centre[1], centre[0])), 400, "axis order", before=before)


def test_content_crs_declares_the_coordinates_crs(city, admin, centre):
    lon, lat = centre[0] + 0.0021, centre[1] + 0.0013
    # EPSG:4326 is latitude first
    latlon = post(admin, new_component(lat, lon), **{"Content-Crs": f"<{EPSG.format(4326)}>"})
    assert latlon.status_code == 201, latlon.text
    # CGCS2000 / 3-degree Gauss-Kruger CM 120E: northing first, metres
    gk = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)
    easting, northing = gk.transform(lon + 0.001, lat)
    projected = post(admin, new_component(northing, easting), **{"Content-Crs": f"<{EPSG.format(4549)}>"})
    assert projected.status_code == 201, projected.text
    stored = {r.id: r.geom for r in read_layer(city.store, UC)}
    first = stored[int(latlon.headers["location"].rsplit("/", 1)[1])]
    second = stored[int(projected.headers["location"].rsplit("/", 1)[1])]
    assert (first.x, first.y) == pytest.approx((lon, lat), abs=1e-9)
    assert (second.x, second.y) == pytest.approx((lon + 0.001, lat), abs=1e-7)
    before = checksum(city, UC)
    refused(city, post(admin, new_component(*centre), **{"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/2000>"}),
            400, "Content-Crs", "not supported", before=before)


def test_attributes_are_checked_against_the_layer_file(city, admin, centre):
    before = checksum(city, UC)
    cases = [
        (new_component(*centre, colour="red"), "colour"),
        (new_component(*centre, status="broken"), "status must be one of"),
        (new_component(*centre, type_name=42), "type_name must be a string"),
        (new_component(*centre, updated_at="yesterday"), "updated_at must be an RFC 3339 date-time"),
        (new_component(*centre, owner_dept=None), "required properties missing or null: owner_dept"),
    ]
    missing = new_component(*centre)
    del missing["properties"]["type_code"]
    cases.append((missing, "type_code"))
    for body, words in cases:
        refused(city, post(admin, body), 400, words, before=before)
    capacity = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(centre)},
                "properties": {"category": "school", "name": "No. 9 School", "capacity": "many"}}
    refused(city, post(admin, capacity, layer="key_places"), 400, "capacity must be a integer")


def test_a_patch_cannot_null_required_attributes_or_change_ids(city, admin):
    fid = read_layer(city.store, UC)[0].id
    etag = admin.get(f"/collections/{UC}/items/{fid}").headers["etag"]
    before = checksum(city, UC)
    headers = {"Content-Type": "application/merge-patch+json", "If-Match": etag}
    url = f"/collections/{UC}/items/{fid}"
    refused(city, admin.patch(url, json={"properties": {"status": None}}, headers=headers), 400, "cannot be set to null", before=before)
    refused(city, admin.patch(url, json={"id": fid + 1, "properties": {"status": "normal"}}, headers=headers), 400, "ids cannot change", before=before)
    refused(city, admin.patch(url, json={}, headers=headers), 400, "changes nothing", before=before)
    refused(city, admin.patch(url, json={"geometry": None}, headers=headers), 400, "cannot be removed", before=before)


def test_staff_cannot_write_what_they_see_masked(city):
    place = next(r for r in read_layer(city.store, "key_places") if r.props["contact"])
    url = f"/collections/key_places/items/{place.id}"
    with city.client(city.staff) as staff:
        shown = staff.get(url)
        masked = shown.json()["properties"].get("contact")
        assert masked != place.props["contact"]  # staff see 138****1234, not the number
        before = checksum(city, "key_places")
        response = staff.patch(url, json={"properties": {"contact": "13800000000"}},
                               headers={"Content-Type": "application/merge-patch+json", "If-Match": shown.headers["etag"]})
        refused(city, response, 403, "contact", layer="key_places", before=before)
        # a PUT that round-trips the masked value (as QGIS would) keeps the stored number
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(place.geom.coords[0])},
                "properties": {**{k: v for k, v in shown.json()["properties"].items()}, "name": "renamed"}}
        put = staff.put(url, json=body, headers={"Content-Type": "application/geo+json", "If-Match": shown.headers["etag"]})
        assert put.status_code == 204, put.text
    stored = next(r for r in read_layer(city.store, "key_places") if r.id == place.id)
    assert stored.props["name"] == "renamed" and stored.props["contact"] == place.props["contact"]
