"""Who sees what, cell by cell: public, staff limited to one street, admin × layer × output, on
both backends, under the shipped layers/roles/roles.yml.

Expected answers come from the stored rows (tests/oracle.py) and the rules as docs/security.md
states them: public reads no cameras and no people, only suppressed counts of people; staff read
cameras without stream URLs, only in their street, in every API; admin reads everything. Exports
(`onemap export --role`) hold what the same role and limits read over HTTP.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter

import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles

from gis.security import audit
from gis.settings import REPO_ROOT
from tests.oapif import all_items
from tests.oracle import read_layer
from tests.security_support import SHIPPED_ROLES, api_key, client, masked_as_expected, security_server
from tests.tiles_support import decode, tile_of

WEB = "WebMercatorQuad"


@pytest.fixture(scope="module")
def server(store):
    with security_server(store) as base:
        yield base


@pytest.fixture(scope="module")
def street(store) -> str:
    """The street with the most cameras: the staff key's only street."""
    counts = Counter(row.props["street"] for row in read_layer(store, "cameras"))
    return counts.most_common(1)[0][0]


@pytest.fixture(scope="module")
def callers(server, store, street):
    made = {
        "public": client(server),
        "staff": client(server, api_key(store, "staff", "grid-member-1", streets=[street])),
        "admin": client(server, api_key(store, "admin", "admin-1")),
    }
    yield made
    for c in made.values():
        c.close()


def collections(http, aggregates: bool = False) -> set[str]:
    response = http.get("/collections")
    assert response.status_code == 200
    return {c["id"] for c in response.json()["collections"] if aggregates or not c["id"].startswith("agg_")}


# -- Features: which collections exist ---------------------------------------------------------------


def test_each_role_lists_exactly_the_layers_it_may_read(callers, store):
    everything = {layer.id for layer in store.catalog.published}
    # the public sees the case loop's numbers, not its cases (reporters, open problems)
    assert collections(callers["public"]) == everything - {"cameras", "population", "cases"}
    assert collections(callers["staff"]) == everything - {"population"}
    assert collections(callers["admin"]) == everything
    # aggregate collections follow their indicator's rights: no camera counts for the public
    public_aggregates = {c for c in collections(callers["public"], True) if c.startswith("agg_")}
    staff_aggregates = {c for c in collections(callers["staff"], True) if c.startswith("agg_")}
    assert not {c for c in public_aggregates if c.startswith(("agg_cameras", "agg_key_persons"))}
    assert {c for c in staff_aggregates if c.startswith("agg_cameras")}


@pytest.mark.parametrize("suffix", ["", "/items", "/items/1", "/queryables", "/schema", "/items?f=html"])
def test_a_layer_a_role_may_not_read_is_absent_not_refused(callers, suffix):
    for role, layer in (("public", "cameras"), ("public", "population"), ("public", "cases"), ("staff", "population")):
        response = callers[role].get(f"/collections/{layer}{suffix}")
        assert response.status_code == 404, (role, layer, suffix, response.status_code)
    assert callers["admin"].get("/collections/population/items?limit=1").status_code == 200


def test_openapi_of_the_public_names_no_hidden_collection(callers):
    text = callers["public"].get("/openapi", params={"f": "json"}).text
    assert "/collections/cameras" not in text and "/collections/population" not in text
    assert "/collections/cameras" in callers["staff"].get("/openapi", params={"f": "json"}).text


# -- Features: rows and attributes ---------------------------------------------------------------------


def test_staff_see_cameras_of_their_street_only_and_never_a_stream_url(callers, store, street):
    rows = read_layer(store, "cameras")
    expected = sorted(r.id for r in rows if r.props["street"] == street)
    got = all_items(callers["staff"], "cameras", limit=500)
    assert sorted(f["id"] for f in got) == expected
    assert all("stream_url" not in f["properties"] for f in got)
    body = callers["staff"].get("/collections/cameras/items", params={"limit": 1}).json()
    assert body["numberMatched"] == len(expected)
    outside = next(r for r in rows if r.props["street"] != street)
    assert callers["staff"].get(f"/collections/cameras/items/{outside.id}").status_code == 404


def test_street_limit_holds_for_every_layer_with_a_street(callers, store, street):
    for layer_id in ("key_places", "urban_components", "grids", "buildings"):
        rows = read_layer(store, layer_id)
        got = callers["staff"].get(f"/collections/{layer_id}/items", params={"limit": 1}).json()
        assert got["numberMatched"] == sum(1 for r in rows if r.props["street"] == street), layer_id


def test_admin_reads_cameras_whole_with_stream_urls(callers, store):
    rows = {r.id: r for r in read_layer(store, "cameras")}
    got = callers["admin"].get("/collections/cameras/items", params={"limit": 50}).json()
    assert got["numberMatched"] == len(rows)
    for feature in got["features"]:
        assert feature["properties"].get("stream_url") == rows[feature["id"]].props["stream_url"]


def test_key_place_phones_are_masked_for_public_and_staff_and_whole_for_admin(callers, store):
    layer = store.catalog["key_places"]
    rows = {r.id: r for r in read_layer(store, "key_places")}
    for role in ("public", "staff"):
        for feature in callers[role].get("/collections/key_places/items", params={"limit": 200}).json()["features"]:
            masked_as_expected(layer, feature["properties"], rows[feature["id"]].props)
    for feature in callers["admin"].get("/collections/key_places/items", params={"limit": 200}).json()["features"]:
        assert feature["properties"]["contact"] == rows[feature["id"]].props["contact"]


def test_masked_attributes_are_neither_queryable_nor_filterable(callers, store):
    assert "contact" not in callers["public"].get("/collections/key_places/queryables").json()["properties"]
    assert "contact" in callers["admin"].get("/collections/key_places/queryables").json()["properties"]
    phone = next(r.props["contact"] for r in read_layer(store, "key_places") if r.props["contact"])
    for params in ({"filter": f"contact = '{phone}'"}, {"contact": phone}, {"sortby": "contact"}):
        response = callers["public"].get("/collections/key_places/items", params=params)
        assert response.status_code == 400, (params, response.status_code)


def test_admin_reads_residents_as_stored(callers, store):
    rows = {r.id: r for r in read_layer(store, "population")}
    got = callers["admin"].get("/collections/population/items", params={"limit": 20}).json()
    for feature in got["features"]:
        stored = rows[feature["id"]].props
        assert feature["properties"]["national_id"] == stored["national_id"]
        assert feature["properties"]["name"] == stored["name"]


def test_html_pages_of_one_role_never_show_anothers_collections(callers):
    # pygeoapi caches the configuration its templates read; each role's pages must use its own
    for role, path in (("public", "/collections/key_places"), ("admin", "/collections/population"),
                       ("staff", "/collections/cameras"), ("public", "/collections/key_places"), ("admin", "/")):
        response = callers[role].get(path, params={"f": "html"})
        assert response.status_code == 200, (role, path, response.status_code)
    for path in ("/", "/collections", "/collections/key_places", "/collections/key_places/items"):
        html = callers["public"].get(path, params={"f": "html"}).text
        assert "/collections/population" not in html and "/collections/cameras" not in html, path


def test_html_pages_follow_the_same_rules(callers, store):
    rows = read_layer(store, "key_places")
    phones = [r.props["contact"] for r in rows if r.props["contact"]]
    html = callers["public"].get("/collections/key_places/items", params={"f": "html", "limit": 200}).text
    assert not any(phone in html for phone in phones)
    assert "****" in html
    assert "/collections/cameras" not in callers["public"].get("/collections", params={"f": "html"}).text
    admin_html = callers["admin"].get("/collections/key_places/items", params={"f": "html", "limit": 200}).text
    assert any(phone in admin_html for phone in phones)


# -- tiles ---------------------------------------------------------------------------------------------


def tilejson_layers(http) -> set[str]:
    response = http.get(f"/tiles/{WEB}/tilejson.json")
    assert response.status_code == 200
    return {layer["id"] for layer in response.json()["vector_layers"]}


def test_tilesets_and_styles_carry_only_what_a_role_may_read(callers):
    public, staff, admin = (tilejson_layers(callers[r]) for r in ("public", "staff", "admin"))
    assert "cameras" not in public and "population" not in public and "cases" not in public
    assert "cameras" in staff and "population" not in staff and "cases" in staff
    assert {"cameras", "population", "cases"} <= admin
    for role, hidden in (("public", "cameras"), ("public", "population"), ("public", "cases"), ("staff", "population")):
        for path in (f"/collections/{hidden}/tiles", f"/collections/{hidden}/tiles/{WEB}",
                     f"/collections/{hidden}/tiles/{WEB}/tilejson.json", f"/collections/{hidden}/styles/default/style.json",
                     f"/collections/{hidden}/tiles/{WEB}/14/6000/13000"):
            assert callers[role].get(path).status_code == 404, (role, path)
        style = callers[role].get("/styles/onemap/style.json").json()
        assert hidden not in {layer.get("source-layer") for layer in style["layers"]}, (role, hidden)


def test_tiles_mask_and_limit_exactly_as_the_features_api(callers, store, street):
    place = next(r for r in read_layer(store, "key_places") if r.props["contact"] and r.props["street"] == street)
    layer = store.catalog["key_places"]
    x, y = tile_of(place.geom.x, place.geom.y, 15)
    rows = {r.id: r for r in read_layer(store, "key_places")}
    for role in ("public", "staff", "admin"):
        response = callers[role].get(f"/collections/key_places/tiles/{WEB}/15/{y}/{x}")
        assert response.status_code == 200, role
        features = decode(response.content)["key_places"]
        assert place.id in features
        for fid, feature in features.items():
            if role == "admin":
                assert feature["properties"].get("contact") == rows[fid].props["contact"]
            else:
                masked_as_expected(layer, feature["properties"], rows[fid].props)
            if role == "staff":
                assert rows[fid].props["street"] == street
    cams = [r for r in read_layer(store, "cameras") if r.props["street"] != street]
    cx, cy = tile_of(cams[0].geom.x, cams[0].geom.y, 16)
    staff_tile = callers["staff"].get(f"/collections/cameras/tiles/{WEB}/16/{cy}/{cx}")
    assert cams[0].id not in decode(staff_tile.content).get("cameras", {})
    admin_tile = decode(callers["admin"].get(f"/collections/cameras/tiles/{WEB}/16/{cy}/{cx}").content)["cameras"]
    assert admin_tile[cams[0].id]["properties"]["stream_url"] == cams[0].props["stream_url"]


def test_heatmaps_follow_aggregate_rights(callers):
    # residents' hexagons are aggregates: the public has them; cameras' are not for the public
    assert callers["public"].get(f"/collections/h3_residents/tiles/{WEB}/tilejson.json").status_code == 200
    assert callers["public"].get(f"/collections/h3_cameras/tiles/{WEB}/tilejson.json").status_code == 404
    assert callers["staff"].get(f"/collections/h3_cameras/tiles/{WEB}/tilejson.json").status_code == 200


# -- stats ---------------------------------------------------------------------------------------------


def test_indicators_listed_follow_the_roles(callers):
    def ids(role):
        return {i["id"] for i in callers[role].get("/stats/indicators").json()["indicators"]}

    assert {"key_persons", "cameras"}.isdisjoint(ids("public")) and "residents" in ids("public")
    assert {"key_persons", "cameras", "residents"} <= ids("staff")
    assert callers["public"].get("/stats", params={"indicator": "key_persons"}).status_code == 404


def test_suppression_applies_without_individual_access_only(callers, store):
    counts = Counter(r.props["grid"] for r in read_layer(store, "population"))
    small = {g for g, n in counts.items() if n < 10}
    public = callers["public"].get("/stats", params={"indicator": "residents", "by": "grid"}).json()
    admin = callers["admin"].get("/stats", params={"indicator": "residents", "by": "grid"}).json()
    assert {g["key"]: g["value"] for g in admin["groups"]} == dict(counts)
    assert admin["suppressed"]["groups"] == 0
    shown = {g["key"] for g in public["groups"]}
    assert shown.isdisjoint(small)
    if small:
        assert public["suppressed"]["groups"] >= len(small)


def test_staff_statistics_count_their_street_only(callers, store, street):
    body = callers["staff"].get("/stats", params={"indicator": "cameras", "by": "street"}).json()
    expected = sum(1 for r in read_layer(store, "cameras") if r.props["street"] == street)
    assert [(g["key"], g["value"]) for g in body["groups"]] == [(street, expected)]
    csv_text = callers["staff"].get("/stats", params={"indicator": "cameras", "by": "street", "f": "csv"}).text
    assert street in csv_text and all(line.split(",")[0] in ("key", street, "suppressed") for line in csv_text.splitlines())


# -- audit ----------------------------------------------------------------------------------------------


def test_sensitive_reads_and_staff_tokens_are_on_the_record(callers, store):
    callers["admin"].get("/collections/population/items", params={"limit": 3, "bbox": "119,36,121,37.5"})
    callers["staff"].get("/collections/grids/items", params={"limit": 2})
    audit.flush(store)
    entries = audit.entries(store, action="features.items", target="population")
    mine = [e for e in entries if e.subject == "admin-1"]
    assert mine and mine[-1].features == 3 and mine[-1].role == "admin" and mine[-1].bbox
    requests = audit.entries(store, subject="grid-member-1", action="request")
    assert any(e.target == "/collections/grids/items" and '"status": 200' in e.detail for e in requests)
    assert audit.verify(store).ok


# -- exports ---------------------------------------------------------------------------------------------


def exported(store, tmp_path, role: str, *options: str, around) -> dict[str, dict[int, dict]]:
    """`onemap export --role ROLE` of the whole dataset at z16 around a place: {layer: {id: properties}}."""
    out = tmp_path / f"{role}.pmtiles"
    bbox = f"{around.x - 0.004},{around.y - 0.004},{around.x + 0.004},{around.y + 0.004}"
    env = {**os.environ, "ONEMAP_DATABASE_URL": store.settings.database.database_url,
           "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name, "ONEMAP_ROLES_FILE": str(SHIPPED_ROLES),
           "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "gis.cli", "export", str(out), "--minzoom", "16", "--maxzoom", "16",
               "--bbox", bbox, "--role", role, *options]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    assert run.returncode == 0, run.stderr[-800:]
    layers: dict[str, dict[int, dict]] = {}
    with open(out, "rb") as f:
        for _, data in all_tiles(Reader(MmapSource(f)).get_bytes):
            for name, features in decode(gzip.decompress(data)).items():
                layers.setdefault(name, {}).update({fid: feature["properties"] for fid, feature in features.items()})
    return layers


def test_exports_hold_what_the_role_may_read(store, street, tmp_path):
    cameras = {r.id: r for r in read_layer(store, "cameras")}
    places = {r.id: r for r in read_layer(store, "key_places")}
    residents = {r.id: r for r in read_layer(store, "population")}
    camera = next(r for r in cameras.values() if r.props["street"] == street)

    public = exported(store, tmp_path, "public", around=camera.geom)
    assert "cameras" not in public and "population" not in public and public.get("key_places")
    for fid, props in public["key_places"].items():
        masked_as_expected(store.catalog["key_places"], props, places[fid].props)

    staff = exported(store, tmp_path, "staff", "--streets", street, around=camera.geom)
    assert "population" not in staff and camera.id in staff["cameras"]
    for fid, props in staff["cameras"].items():
        assert cameras[fid].props["street"] == street and "stream_url" not in props
    for fid, props in staff.get("key_places", {}).items():
        assert places[fid].props["street"] == street
        masked_as_expected(store.catalog["key_places"], props, places[fid].props)

    admin = exported(store, tmp_path, "admin", around=camera.geom)
    assert admin["cameras"][camera.id]["stream_url"] == camera.props["stream_url"]
    # staff's cameras are exactly admin's that lie in their street
    assert {fid for fid in admin["cameras"] if cameras[fid].props["street"] == street} == set(staff["cameras"])
    assert admin["population"]
    for fid, props in admin["population"].items():
        for name in ("name", "national_id", "phone", "address"):
            assert props.get(name) == residents[fid].props[name]

    audit.flush(store)
    runs = [e for e in audit.entries(store, action="export") if e.subject.startswith("cli:")]
    assert {e.role for e in runs} >= {"public", "staff", "admin"}
    assert audit.verify(store).ok


def test_exports_refuse_a_role_that_is_not_configured(tmp_path):
    env = {**os.environ, "ONEMAP_ROLES_FILE": str(SHIPPED_ROLES), "PYTHONPATH": str(REPO_ROOT)}
    for command in ("export", "seed"):
        target = [str(tmp_path / "out.pmtiles")] if command == "export" else ["--cache-dir", str(tmp_path)]
        run = subprocess.run([sys.executable, "-m", "gis.cli", command, *target, "--role", "superuser"],
                             capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env)
        assert run.returncode == 2, run.stderr[-500:]
        assert "no role 'superuser'" in run.stderr and "public, staff, dispatcher, department, supervisor, admin" in run.stderr
    assert not (tmp_path / "out.pmtiles").exists()
