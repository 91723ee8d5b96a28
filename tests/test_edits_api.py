"""OGC API - Features Part 4 over real HTTP, on both backends: what an editing client relies on.

After every edit the item, /items, the tiles over the old and new place and /stats must all show
it before the response returns; expected values come from tests/oracle.py (one plain SELECT) and
from the request itself, never from the code under test.
"""

from __future__ import annotations

import hashlib
import threading

import pytest
import shapely

from tests.edit_city import build
from tests.oracle import read_layer
from tests.tiles_support import decode, tile_of

PART4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"
UC = "urban_components"
Z = 21  # deep enough that no tile is thinned: every feature in it is drawn
_places = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("edits_api"), "edits_api")
    yield built
    cleanup()


@pytest.fixture(scope="module")
def staff(city):
    with city.client(city.staff) as client:
        yield client


@pytest.fixture(scope="module")
def admin(city):
    with city.client(city.admin) as client:
        yield client


@pytest.fixture(scope="module")
def public(city):
    with city.client() as client:
        yield client


def new_component(lon: float, lat: float, **properties) -> dict:
    props = {"type_code": "0125", "type_name": "street lamp", "owner_dept": "urban_management", "status": "normal"}
    props.update(properties)
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def inside_point(city, layer: str = UC) -> tuple[float, float]:
    """A fresh place among the layer's features, never used before in this module."""
    rows = read_layer(city.store, layer)
    middle = rows[len(rows) // 3].geom
    step = next(_places)
    return middle.x + 0.00037 * step, middle.y + 0.00011 * step


def oracle_row(city, layer: str, fid: int):
    return next((r for r in read_layer(city.store, layer) if r.id == fid), None)


def checksum(city, layer: str) -> str:
    """Every row of the layer, hashed independently of the code under test."""
    digest = hashlib.sha256()
    for row in read_layer(city.store, layer):
        digest.update(repr((row.id, sorted(row.props.items()), row.geom.wkb_hex)).encode())
    return digest.hexdigest()


def tile_ids(client, layer: str, lon: float, lat: float) -> dict[int, dict]:
    x, y = tile_of(lon, lat, Z)
    response = client.get(f"/collections/{layer}/tiles/WebMercatorQuad/{Z}/{y}/{x}")
    assert response.status_code in (200, 204), response.text[:300]
    return {fid: f["properties"] for fid, f in decode(response.content).get(layer, {}).items()}


def total(client, indicator: str) -> float:
    response = client.get("/stats", params={"indicator": indicator})
    assert response.status_code == 200, response.text[:300]
    return response.json()["total"]


def matched(client, layer: str) -> int:
    response = client.get(f"/collections/{layer}/items", params={"limit": 1})
    assert response.status_code == 200, response.text[:300]
    return response.json()["numberMatched"]


def item(client, layer: str, fid: int):
    return client.get(f"/collections/{layer}/items/{fid}")


def patch(client, layer, fid, body, etag, **headers):
    return client.patch(
        f"/collections/{layer}/items/{fid}", json=body,
        headers={"Content-Type": "application/merge-patch+json", "If-Match": etag, **headers},
    )


# -- discovery: what QGIS reads before it offers editing ---------------------------------------------


def test_part4_is_declared_exactly_to_callers_who_may_edit(public, staff, admin):
    anonymous = public.get("/conformance").json()["conformsTo"]
    assert not any("ogcapi-features-4" in c for c in anonymous)
    for client in (staff, admin):
        classes = client.get("/conformance").json()["conformsTo"]
        assert PART4 + "create-replace-delete" in classes
        assert PART4 + "update" in classes


def test_options_allow_lists_what_the_caller_may_do(city, public, staff, admin):
    fid = read_layer(city.store, UC)[0].id
    allow = lambda client, path: {m.strip() for m in client.options(path).headers["allow"].split(",")}  # noqa: E731
    assert "POST" in allow(staff, f"/collections/{UC}/items")
    assert {"PUT", "PATCH", "DELETE"} <= allow(staff, f"/collections/{UC}/items/{fid}")
    assert allow(public, f"/collections/{UC}/items") == {"GET", "HEAD", "OPTIONS"}
    assert allow(public, f"/collections/{UC}/items/{fid}") == {"GET", "HEAD", "OPTIONS"}
    camera = read_layer(city.store, "cameras")[0].id
    # cameras: status only, and only by PATCH
    assert allow(admin, f"/collections/cameras/items/{camera}") == {"GET", "HEAD", "OPTIONS", "PATCH"}
    assert "POST" not in allow(admin, "/collections/cameras/items")
    assert allow(admin, "/collections/districts/items") == {"GET", "HEAD", "OPTIONS"}


def test_every_item_has_a_strong_etag_that_changes_with_the_row(city, staff):
    fid = read_layer(city.store, UC)[3].id
    first = item(staff, UC, fid)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert item(staff, UC, fid).headers["etag"] == etag  # stable while the row is
    changed = patch(staff, UC, fid, {"properties": {"owner_dept": "street office"}}, etag)
    assert changed.status_code == 204, changed.text
    assert changed.headers["etag"] == item(staff, UC, fid).headers["etag"] != etag


# -- the round trip: every view of the city changes together ---------------------------------------


def test_create_shows_everywhere_before_the_response_returns(city, staff, admin):
    lon, lat = inside_point(city)
    before_tile = tile_ids(staff, UC, lon, lat)
    before_items, before_total = matched(staff, UC), total(admin, "urban_components")
    response = staff.post(f"/collections/{UC}/items", json=new_component(lon, lat, status="damaged"),
                          headers={"Content-Type": "application/geo+json"})
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    fid = int(location.rsplit("/", 1)[1])
    assert location == f"{city.url}/collections/{UC}/items/{fid}"
    assert fid not in before_tile
    got = staff.get(location)
    assert got.status_code == 200 and got.headers["etag"] == response.headers["etag"]
    assert got.json()["properties"]["status"] == "damaged"
    assert got.json()["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-9)
    row = oracle_row(city, UC, fid)
    assert row.props["type_code"] == "0125" and row.geom.equals_exact(shapely.Point(lon, lat), 1e-9)
    assert matched(staff, UC) == before_items + 1 == len(read_layer(city.store, UC))
    assert total(admin, "urban_components") == before_total + 1
    assert tile_ids(staff, UC, lon, lat)[fid]["status"] == "damaged"


def test_patch_replace_delete_round_trip(city, staff, admin):
    lon, lat = inside_point(city)
    created = staff.post(f"/collections/{UC}/items", json=new_component(lon, lat), headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    fid, etag = int(created.headers["location"].rsplit("/", 1)[1]), created.headers["etag"]
    tile_ids(staff, UC, lon, lat)  # cached now: the edits below must drop it
    repair_before = total(admin, "components_needing_repair")

    # PATCH: one attribute; nothing else moves
    patched = patch(staff, UC, fid, {"properties": {"status": "missing"}}, etag)
    assert patched.status_code == 204, patched.text
    row = oracle_row(city, UC, fid)
    assert row.props["status"] == "missing" and row.props["type_name"] == "street lamp"
    assert total(admin, "components_needing_repair") == repair_before + 1
    assert tile_ids(staff, UC, lon, lat)[fid]["status"] == "missing"
    assert item(staff, UC, fid).json()["properties"]["status"] == "missing"

    # PUT: a new place and a whole new set of properties; unset optional ones become null
    new_lon, new_lat = lon + 0.004, lat - 0.003
    body = new_component(new_lon, new_lat, type_code="0115", type_name="fire hydrant", status="normal")
    replaced = staff.put(f"/collections/{UC}/items/{fid}", json=body,
                         headers={"Content-Type": "application/geo+json", "If-Match": patched.headers["etag"]})
    assert replaced.status_code == 204, replaced.text
    row = oracle_row(city, UC, fid)
    assert row.props["type_code"] == "0115" and row.props["grid"] is None
    assert row.geom.equals_exact(shapely.Point(new_lon, new_lat), 1e-9)
    assert total(admin, "components_needing_repair") == repair_before
    assert fid not in tile_ids(staff, UC, lon, lat) or tile_of(lon, lat, Z) == tile_of(new_lon, new_lat, Z)
    assert tile_ids(staff, UC, new_lon, new_lat)[fid]["type_code"] == "0115"

    # DELETE
    count = matched(staff, UC)
    uc_total = total(admin, "urban_components")
    deleted = staff.delete(f"/collections/{UC}/items/{fid}", headers={"If-Match": replaced.headers["etag"]})
    assert deleted.status_code == 204, deleted.text
    assert item(staff, UC, fid).status_code == 404
    assert oracle_row(city, UC, fid) is None
    assert matched(staff, UC) == count - 1 == len(read_layer(city.store, UC))
    assert total(admin, "urban_components") == uc_total - 1
    assert fid not in tile_ids(staff, UC, new_lon, new_lat)


def test_layer_metadata_matches_a_full_recount_after_edits(city):
    rows = read_layer(city.store, UC)
    meta = city.store.layer_meta(UC)
    assert meta.feature_count == len(rows)
    bounds = shapely.MultiPoint([r.geom for r in rows]).bounds
    assert meta.bbox == pytest.approx(bounds, abs=1e-12)


# -- optimistic concurrency ------------------------------------------------------------------------


def test_changes_without_if_match_are_refused_with_428(city, staff):
    fid = read_layer(city.store, UC)[5].id
    before = checksum(city, UC)
    url = f"/collections/{UC}/items/{fid}"
    responses = [
        staff.patch(url, json={"properties": {"status": "damaged"}}, headers={"Content-Type": "application/merge-patch+json"}),
        staff.put(url, json=new_component(*inside_point(city)), headers={"Content-Type": "application/geo+json"}),
        staff.delete(url),
    ]
    for response in responses:
        assert response.status_code == 428, response.text
        assert "If-Match" in response.json()["detail"]
    assert checksum(city, UC) == before


def test_a_stale_etag_is_412_and_nothing_changes(city, staff):
    fid = read_layer(city.store, UC)[6].id
    old = item(staff, UC, fid).headers["etag"]
    assert patch(staff, UC, fid, {"properties": {"status": "under_repair"}}, old).status_code == 204
    before = checksum(city, UC)
    url = f"/collections/{UC}/items/{fid}"
    stale = [
        patch(staff, UC, fid, {"properties": {"status": "damaged"}}, old),
        staff.put(url, json=new_component(*inside_point(city)), headers={"Content-Type": "application/geo+json", "If-Match": old}),
        staff.delete(url, headers={"If-Match": old}),
        patch(staff, UC, fid, {"properties": {"status": "damaged"}}, "W/" + item(staff, UC, fid).headers["etag"]),
    ]
    for response in stale:
        assert response.status_code == 412, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert checksum(city, UC) == before


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_patches_with_one_etag_exactly_one_wins(city, round_):
    fid = read_layer(city.store, UC)[10 + round_].id
    with city.client(city.staff) as first, city.client(city.staff) as second:
        etag = item(first, UC, fid).headers["etag"]
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def send(client, status):
            barrier.wait()
            results[status] = patch(client, UC, fid, {"properties": {"status": status}}, etag).status_code

        threads = [threading.Thread(target=send, args=args) for args in ((first, "damaged"), (second, "missing"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(results.values()) == [204, 412], results
    winner = next(status for status, code in results.items() if code == 204)
    assert oracle_row(city, UC, fid).props["status"] == winner


# -- who may edit what ---------------------------------------------------------------------------------


def test_anonymous_callers_cannot_edit(city, public):
    before = checksum(city, UC)
    lon, lat = inside_point(city)
    response = public.post(f"/collections/{UC}/items", json=new_component(lon, lat), headers={"Content-Type": "application/geo+json"})
    assert response.status_code == 401, response.text
    assert checksum(city, UC) == before


def test_camera_status_only(city, admin):
    camera = read_layer(city.store, "cameras")[0]
    etag = item(admin, "cameras", camera.id).headers["etag"]
    name = patch(admin, "cameras", camera.id, {"properties": {"name": "renamed"}}, etag)
    assert name.status_code == 403 and "status" in name.json()["detail"]
    moved = patch(admin, "cameras", camera.id, {"geometry": {"type": "Point", "coordinates": [camera.geom.x, camera.geom.y + 0.001]}}, etag)
    assert moved.status_code == 403
    put = admin.put(f"/collections/cameras/items/{camera.id}", json={"type": "Feature", "geometry": None, "properties": {}},
                    headers={"Content-Type": "application/geo+json", "If-Match": etag})
    assert put.status_code == 405 and "PATCH" in put.headers["allow"]
    status = "offline" if camera.props["status"] == "online" else "online"
    offline_before = total(admin, "cameras_offline")
    ok = patch(admin, "cameras", camera.id, {"properties": {"status": status}}, etag)
    assert ok.status_code == 204, ok.text
    assert oracle_row(city, "cameras", camera.id).props["status"] == status
    assert total(admin, "cameras_offline") == offline_before + (1 if status == "offline" else -1)


def test_layers_without_editing_refuse_with_405(city, admin):
    district = read_layer(city.store, "districts")[0].id
    response = admin.delete(f"/collections/districts/items/{district}", headers={"If-Match": "*"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


def test_every_edit_is_in_the_audit_log(city, staff):
    from gis.security import audit

    lon, lat = inside_point(city)
    created = staff.post(f"/collections/{UC}/items", json=new_component(lon, lat), headers={"Content-Type": "application/geo+json"})
    fid = int(created.headers["location"].rsplit("/", 1)[1])
    patched = patch(staff, UC, fid, {"properties": {"status": "damaged"}}, created.headers["etag"])
    staff.delete(f"/collections/{UC}/items/{fid}", headers={"If-Match": patched.headers["etag"]})
    entries = audit.entries(city.store, target=f"{UC}/{fid}")
    assert [e.action for e in entries] == ["edit.create", "edit.update", "edit.delete"]
    assert {e.subject for e in entries} == {"grid-member-1"} and {e.role for e in entries} == {"staff"}
    assert all(e.features == 1 and e.bbox for e in entries)


def test_a_staff_member_limited_to_a_street_edits_only_there(city):
    from gis.security import keys

    rows = [r for r in read_layer(city.store, UC) if r.props["street"]]
    mine = rows[0]
    other = next(r for r in rows if r.props["street"] != mine.props["street"])
    token, _ = keys.create(city.store, "grid-member-2", "staff", streets=[mine.props["street"]])
    with city.client({"Authorization": f"Bearer {token}"}) as member:
        before = checksum(city, UC)
        # another street's component is not even visible to this member
        assert item(member, UC, other.id).status_code == 404
        elsewhere = patch(member, UC, other.id, {"properties": {"status": "damaged"}}, "*")
        assert elsewhere.status_code in (403, 404), elsewhere.text
        etag = item(member, UC, mine.id).headers["etag"]
        away = patch(member, UC, mine.id, {"properties": {"street": other.props["street"]}}, etag)
        assert away.status_code == 403, away.text  # moving it out of the member's street
        assert checksum(city, UC) == before
        ok = patch(member, UC, mine.id, {"properties": {"status": "under_repair"}}, etag)
        assert ok.status_code == 204, ok.text
    assert oracle_row(city, UC, mine.id).props["status"] == "under_repair"
