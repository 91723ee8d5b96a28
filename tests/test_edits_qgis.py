"""Editing as QGIS does it, request for request, on both backends.

QGIS's OAPIF provider (3.32 and later; Debian's 3.22 has no OAPIF editing, so its bindings cannot
drive this) decides what it offers from two OPTIONS requests: POST in `Allow` on /items turns on
adding features; PUT, DELETE and PATCH on the first item of /items?limit=10 turn on changing
attributes and geometries, deleting, and patching. It then sends GeoJSON with `Content-Crs` set to
the layer's CRS (here the storage CRS, latitude first) and no If-Match. These tests replay that
protocol from QGIS's source, against a server with `ONEMAP_EDIT_REQUIRE_IF_MATCH=false`, the
setting a city that edits through QGIS runs with; the default server asks QGIS for If-Match.
"""

from __future__ import annotations

import pytest
import shapely

from tests.edit_city import build
from tests.oracle import read_layer

UC = "urban_components"
STORAGE = "http://www.opengis.net/def/crs/EPSG/0/4490"
PART4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("edits_qgis"), "edits_qgis", edit_require_if_match=False)
    yield built
    cleanup()


@pytest.fixture(scope="module")
def qgis(city):
    with city.client({**city.staff, "User-Agent": "Mozilla/5.0 QGIS/33400/Debian GNU/Linux 12"}) as client:
        yield client


def allow(response) -> set[str]:
    assert response.status_code in (200, 204), response.text
    return {m.strip() for m in response.headers["allow"].split(",")}


def test_what_qgis_reads_before_it_offers_editing(qgis):
    assert {"conformance", "data"} <= {link["rel"] for link in qgis.get("/").json()["links"]}
    classes = qgis.get("/conformance").json()["conformsTo"]
    assert PART4 + "create-replace-delete" in classes and PART4 + "update" in classes
    collection = qgis.get(f"/collections/{UC}").json()
    assert collection["storageCrs"] == STORAGE
    first = qgis.get(f"/collections/{UC}/items", params={"limit": 10}).json()["features"][0]["id"]
    assert "POST" in allow(qgis.options(f"/collections/{UC}/items"))
    assert {"PUT", "DELETE", "PATCH"} <= allow(qgis.options(f"/collections/{UC}/items/{first}"))
    # with no feature to probe, QGIS asks about a made-up id: the answer is the same
    assert {"PUT", "DELETE", "PATCH"} <= allow(qgis.options(f"/collections/{UC}/items/unknown_id"))


def test_qgis_adds_changes_and_deletes_a_feature(city, qgis):
    base = read_layer(city.store, UC)[20].geom
    lon, lat = base.x + 0.0007, base.y + 0.0004
    # addFeatures: the layer's CRS is the storage CRS, latitude first, sent as Content-Crs
    created = qgis.post(
        f"/collections/{UC}/items",
        json={"type": "Feature", "geometry": {"type": "Point", "coordinates": [lat, lon]},
              "properties": {"type_code": "0201", "type_name": "bus stop", "owner_dept": "transport", "status": "normal"}},
        headers={"Content-Type": "application/geo+json", "Content-Crs": STORAGE},
    )
    assert created.status_code == 201, created.text
    fid = created.headers["location"].rsplit("/", 1)[1]
    stored = next(r for r in read_layer(city.store, UC) if str(r.id) == fid)
    assert stored.geom.equals_exact(shapely.Point(lon, lat), 1e-9)
    # changeAttributeValues with PATCH support: only the changed properties, no If-Match
    changed = qgis.patch(f"/collections/{UC}/items/{fid}", content=b'{"properties":{"status":"damaged"}}',
                         headers={"Content-Type": "application/merge-patch+json"})
    assert changed.status_code == 204, changed.text
    # changeGeometryValues: only the geometry, in the layer's CRS
    moved = qgis.patch(f"/collections/{UC}/items/{fid}",
                       json={"geometry": {"type": "Point", "coordinates": [lat + 0.0001, lon]}},
                       headers={"Content-Type": "application/merge-patch+json", "Content-Crs": STORAGE})
    assert moved.status_code == 204, moved.text
    row = next(r for r in read_layer(city.store, UC) if str(r.id) == fid)
    assert row.props["status"] == "damaged"
    assert row.geom.equals_exact(shapely.Point(lon, lat + 0.0001), 1e-9)
    # deleteFeatures
    assert qgis.delete(f"/collections/{UC}/items/{fid}").status_code == 204
    assert all(str(r.id) != fid for r in read_layer(city.store, UC))


def test_a_stale_etag_is_still_refused_when_if_match_is_optional(city, qgis):
    fid = read_layer(city.store, UC)[21].id
    old = qgis.get(f"/collections/{UC}/items/{fid}").headers["etag"]
    headers = {"Content-Type": "application/merge-patch+json"}
    assert qgis.patch(f"/collections/{UC}/items/{fid}", json={"properties": {"status": "missing"}}, headers=headers).status_code == 204
    stale = qgis.patch(f"/collections/{UC}/items/{fid}", json={"properties": {"status": "normal"}}, headers={**headers, "If-Match": old})
    assert stale.status_code == 412
    assert next(r for r in read_layer(city.store, UC) if r.id == fid).props["status"] == "missing"
