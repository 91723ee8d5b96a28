"""Encryption at rest, on both backends: the store holds ciphertext of every sensitive column,
read back over a connection of its own (sqlite3 on the .gpkg file, psycopg on PostgreSQL) rather
than through OneMap; admin still reads the originals through Features and tiles; a wrong data key
stops the server at start with a message; edits, `onemap load` and the migration of an older
store all leave ciphertext. Originals come from tests/oracle.py, which opens sealed values in
Python with the store's key, independently of the SQL decryption under test.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import defaultdict

import psycopg
import pytest
from sqlalchemy import text

from gis.app.factory import create_app
from gis.security.encryption import DataKeyError, encrypted_names
from gis.settings import DatabaseSettings, Settings
from gis.storage import migrations
from gis.storage.engine import gpkg_path
from gis.storage.store import Store
from tests.conftest import free_port
from tests.edit_city import build
from tests.imports_support import close_store, onemap_load, open_store
from tests.oracle import read_layer
from tests.security_support import api_key, client, security_server
from tests.tiles_support import decode, tile_of

PERSONAL = ("name", "national_id", "phone", "address")
SEALED = {"population": (*PERSONAL, "key_category"), "key_places": ("contact",), "cameras": ("stream_url",)}
OTHER_KEY = "ab" * 32


def raw_rows(store, layer: str, columns) -> list[tuple]:
    """Rows as the database holds them, over a connection that is not OneMap's (no key, no functions)."""
    cols = ", ".join(["id", *(f'"{c}"' for c in columns)])
    if store.postgis:
        url = store.settings.database.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return conn.execute(f'SELECT {cols} FROM "{store.schema}"."{layer}" ORDER BY id').fetchall()
    # in another process: closing any descriptor of the file (a second SQLite library, or a plain
    # open()) would drop the POSIX locks this process's store connections hold on it
    code = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall()))")
    query = f'SELECT {cols} FROM "{layer}" ORDER BY id'
    out = subprocess.run([sys.executable, "-c", code, str(gpkg_path(store.settings.database.database_url)), query],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [tuple(row) for row in json.loads(out)]


def assert_sealed(value: str) -> None:
    raw = base64.b64decode(value, validate=True)
    assert len(raw) >= 32 and len(raw) % 16 == 0, value  # a 16-byte IV and whole AES blocks


def test_the_sealed_columns_are_the_sensitive_classes(store):
    for layer, names in SEALED.items():
        assert encrypted_names(store.catalog[layer]) == frozenset(names)
    assert not encrypted_names(store.catalog["buildings"])


def test_the_store_holds_no_plaintext_of_any_resident(store):
    residents = read_layer(store, "population")
    raw = raw_rows(store, "population", SEALED["population"])
    assert len(raw) == len(residents) > 100
    originals = {r.props[n] for r in residents for n in SEALED["population"] if r.props[n]}
    stored = [v for row in raw for v in row[1:] if v is not None]
    assert originals and stored
    assert not originals & set(stored), "a sensitive value is stored as plaintext"
    for value in stored:
        assert_sealed(value)
    # not even inside a value: no national ID, phone or name appears anywhere in what is stored
    blob = "\n".join(stored)
    for resident in residents[:300]:
        for name in ("national_id", "phone"):
            if resident.props[name]:
                assert resident.props[name] not in blob
    # nullness is kept (and shown: a phone is absent or not), values are not
    for resident, row in zip(residents, raw):
        assert [resident.props[n] is None for n in SEALED["population"]] == [v is None for v in row[1:]]


def test_equal_values_are_stored_as_different_bytes(store):
    residents = read_layer(store, "population")
    raw = {row[0]: row[1:] for row in raw_rows(store, "population", SEALED["population"])}
    by_name = defaultdict(list)
    for resident in residents:
        by_name[resident.props["name"]].append(resident.id)
    shared = [ids for ids in by_name.values() if len(ids) > 1]
    assert shared, "the demo city has namesakes"
    for ids in shared[:50]:
        stored = [raw[i][0] for i in ids]
        assert len(set(stored)) == len(stored), "equal names sealed to equal bytes: the IV is not random"


def test_other_sensitive_columns_are_sealed_too(store):
    for layer in ("key_places", "cameras"):
        (column,) = SEALED[layer]
        originals = {r.id: r.props[column] for r in read_layer(store, layer)}
        stored = {row[0]: row[1] for row in raw_rows(store, layer, [column])}
        assert any(originals.values())
        for fid, value in stored.items():
            assert (value is None) == (originals[fid] is None)
            if value is not None:
                assert value != originals[fid]
                assert_sealed(value)


def test_the_geopackage_file_holds_no_national_id(store):
    if store.postgis:
        pytest.skip("the file check is for the embedded store; PostgreSQL's files are the server's")
    path = gpkg_path(store.settings.database.database_url)
    residents = read_layer(store, "population")
    assert residents
    # read in another process, for the reason raw_rows gives
    code = ("import json, pathlib, re, sys; p = pathlib.Path(sys.argv[1]); w = p.with_name(p.name + '-wal'); "
            "data = p.read_bytes() + (w.read_bytes() if w.exists() else b''); "
            "seen = {m.decode() for m in re.findall(rb'[0-9]{17}[0-9X]', data)}; "
            "print(json.dumps(sorted(seen & set(json.load(sys.stdin)))))")
    ids = json.dumps([r.props["national_id"] for r in residents])
    found = subprocess.run([sys.executable, "-c", code, str(path)], input=ids, capture_output=True, text=True,
                           check=True, timeout=120).stdout
    assert json.loads(found) == []


@pytest.fixture(scope="module")
def shipped(store):
    with security_server(store) as base:
        yield base


def test_admin_reads_the_originals_through_features_and_filters(shipped, store):
    residents = [r for r in read_layer(store, "population") if all(r.props[n] for n in PERSONAL)][:20]
    ids = ",".join(str(r.id) for r in residents)
    with client(shipped, api_key(store, "admin")) as admin:
        body = admin.get("/collections/population/items", params={"filter": f"id IN ({ids})", "limit": 100}).json()
        got = {f["id"]: f["properties"] for f in body["features"]}
        assert len(got) == len(residents)
        for resident in residents:
            for name in SEALED["population"]:
                assert got[resident.id][name] == resident.props[name], (resident.id, name)
        # a filter and a sort on a sealed column compare plaintext, in SQL
        one = residents[3]
        found = admin.get("/collections/population/items",
                          params={"filter": f"national_id = '{one.props['national_id']}'", "limit": 5}).json()
        assert [f["id"] for f in found["features"]] == [one.id]
        ordered = admin.get("/collections/population/items",
                            params={"filter": f"id IN ({ids})", "sortby": "phone", "limit": 100}).json()
        phones = [f["properties"]["phone"] for f in ordered["features"]]
        assert phones == sorted(phones)
    # everyone else still gets masks made from the plaintext, not from ciphertext
    with client(shipped, api_key(store, "staff")) as staff:
        cams = staff.get("/collections/cameras/items", params={"limit": 5}).json()["features"]
        assert cams and all("stream_url" not in f["properties"] for f in cams)
        places = staff.get("/collections/key_places/items", params={"limit": 200}).json()["features"]
        contacts = [f["properties"]["contact"] for f in places if f["properties"].get("contact")]
        assert contacts and all("****" in c and "=" not in c for c in contacts)


def test_admin_reads_the_originals_in_tiles(shipped, store):
    resident = next(r for r in read_layer(store, "population") if all(r.props[n] for n in PERSONAL))
    z = 20
    x, y = tile_of(resident.geom.x, resident.geom.y, z)
    with client(shipped, api_key(store, "admin")) as admin:
        response = admin.get(f"/collections/population/tiles/WebMercatorQuad/{z}/{y}/{x}")
        assert response.status_code == 200, response.text[:300]
        props = decode(response.content)["population"][resident.id]["properties"]
        for name in PERSONAL:
            assert props[name] == resident.props[name]


def settings_with_key(store, key: str) -> Settings:
    db = store.settings.database
    return Settings(DatabaseSettings(database_url=db.database_url, schema_name=db.schema_name, data_key=key),
                    store.settings.server)


def test_a_wrong_key_is_a_clean_start_up_error(store):
    other = Store.open(settings_with_key(store, OTHER_KEY), store.catalog)
    try:
        with pytest.raises(DataKeyError, match="sealed with data key .* ONEMAP_DATA_KEY_FILE"):
            other.initialise()
        with pytest.raises(DataKeyError, match="sealed with data key"):
            create_app(other.settings, other)
    finally:
        other.close()
    env = {**os.environ, "ONEMAP_DATABASE_URL": store.settings.database.database_url,
           "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name, "ONEMAP_DATA_KEY": OTHER_KEY}
    served = subprocess.run([sys.executable, "-m", "gis.cli", "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 1
    assert "sealed with data key" in served.stderr and "ONEMAP_DATA_KEY_FILE" in served.stderr
    assert "Traceback" not in served.stderr
    env["ONEMAP_DATA_KEY"] = "not-a-key"
    served = subprocess.run([sys.executable, "-m", "gis.cli", "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 1 and "64 hex digits" in served.stderr and "Traceback" not in served.stderr


def test_no_key_configured_generates_one_beside_a_geopackage(tmp_path):
    settings = Settings(DatabaseSettings(database_url=f"gpkg:///{tmp_path / 'fresh.gpkg'}"))
    store = Store.open(settings)
    try:
        key_file = tmp_path / "fresh.gpkg.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert len(bytes.fromhex(key_file.read_text().strip())) == 32
        again = Store.open(settings)  # the next start reads the same key
        assert again.key.key_id == store.key.key_id
        again.close()
    finally:
        store.close()


PLACES = '{"type":"FeatureCollection","features":[%s]}'
PLACE = ('{"type":"Feature","properties":{"SID":"%s","category":"school","name":"School %d","contact":"%s"},'
         '"geometry":{"type":"Point","coordinates":[%f,%f]}}')


def places(path, n: int):
    path.write_text(PLACES % ",".join(PLACE % (f"S{i}", i, f"0532-8{i:07d}", 120 + i * 1e-3, 36.7) for i in range(n)),
                    encoding="utf-8")
    return path


@pytest.fixture()
def own_store(backend, tmp_path):
    store = open_store(backend, tmp_path, "sealed")
    yield store
    close_store(store)


def test_onemap_load_writes_ciphertext_and_reloads_as_unchanged(own_store, tmp_path):
    source = places(tmp_path / "places.geojson", 12)
    result = onemap_load(own_store, source, "--layer", "key_places", "--source-id", "SID")
    assert result.returncode == 0 and "12 inserted" in result.stdout, result.stderr
    stored = [row[1] for row in raw_rows(own_store, "key_places", ["contact"])]
    assert len(stored) == 12 and not any(v.startswith("0532") for v in stored)
    for value in stored:
        assert_sealed(value)
    assert sorted(r.props["contact"] for r in read_layer(own_store, "key_places")) == [f"0532-8{i:07d}" for i in range(12)]
    # a re-run compares plaintext: sealed values differ by their IV alone, and nothing is rewritten
    again = onemap_load(own_store, source, "--layer", "key_places", "--source-id", "SID")
    assert "0 inserted, 0 updated, 12 unchanged" in again.stdout, again.stdout + again.stderr
    assert [row[1] for row in raw_rows(own_store, "key_places", ["contact"])] == stored


def test_a_plaintext_store_is_sealed_in_place_by_the_migration(own_store, tmp_path):
    result = onemap_load(own_store, places(tmp_path / "places.geojson", 8), "--layer", "key_places", "--source-id", "SID")
    assert result.returncode == 0, result.stderr
    originals = {r.id: r.props["contact"] for r in read_layer(own_store, "key_places")}
    # the store as an older OneMap left it: plaintext, no key recorded, history before revision 0003
    prefix = f'"{own_store.schema}".' if own_store.postgis else ""
    with own_store.engine.begin() as conn:
        for fid, contact in originals.items():
            conn.execute(text(f"UPDATE {prefix}key_places SET contact = :c WHERE id = :i"), {"c": contact, "i": fid})
        conn.execute(text(f"DROP TABLE {prefix}onemap_data_key"))
        conn.execute(text(f"UPDATE {prefix}{migrations.VERSION_TABLE} SET version_num = '0002'"))
    assert {row[0]: row[1] for row in raw_rows(own_store, "key_places", ["contact"])} == originals
    own_store.initialise()
    stored = {row[0]: row[1] for row in raw_rows(own_store, "key_places", ["contact"])}
    for fid, value in stored.items():
        assert value != originals[fid]
        assert_sealed(value)
        assert own_store.key.open(value) == originals[fid]
    with own_store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT key_id FROM {prefix}onemap_data_key")).scalar_one() == own_store.key.key_id
        assert migrations.current(conn, own_store) == migrations.head()


def test_rekey_reseals_every_value_with_the_new_key(own_store, tmp_path):
    from click.testing import CliRunner

    from gis.cli import main

    assert onemap_load(own_store, places(tmp_path / "places.geojson", 6), "--layer", "key_places").returncode == 0
    originals = {r.id: r.props["contact"] for r in read_layer(own_store, "key_places")}
    before = {row[0]: row[1] for row in raw_rows(own_store, "key_places", ["contact"])}
    new_file = tmp_path / "new.key"
    env = {"ONEMAP_DATABASE_URL": own_store.settings.database.database_url,
           "ONEMAP_SCHEMA_NAME": own_store.settings.database.schema_name}
    result = CliRunner().invoke(main, ["rekey", "--new-key-file", str(new_file)], env=env)
    assert result.exit_code == 0, result.output
    assert "resealed 6 values" in result.output and new_file.stat().st_mode & 0o777 == 0o600
    after = {row[0]: row[1] for row in raw_rows(own_store, "key_places", ["contact"])}
    assert set(after) == set(before) and all(after[i] != before[i] for i in after)
    with pytest.raises(DataKeyError, match="sealed with data key"):
        own_store.initialise()  # the old key no longer opens it
    db = own_store.settings.database
    rekeyed = Store.open(Settings(DatabaseSettings(database_url=db.database_url, schema_name=db.schema_name,
                                                   data_key_file=new_file), own_store.settings.server))
    try:
        rekeyed.initialise()
        assert {r.id: r.props["contact"] for r in read_layer(rekeyed, "key_places")} == originals
    finally:
        rekeyed.close()
    again = CliRunner().invoke(main, ["rekey", "--new-key-file", str(new_file)], env=env)
    assert again.exit_code == 1 and "sealed with data key" in again.output


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("sealed_edits"), "sealed_edits")
    yield built
    cleanup()


def test_edits_write_ciphertext(city):
    place = next(r for r in read_layer(city.store, "key_places") if r.props["contact"])
    with city.client(city.admin) as admin:
        etag = admin.get(f"/collections/key_places/items/{place.id}").headers["etag"]
        response = admin.patch(f"/collections/key_places/items/{place.id}", json={"properties": {"contact": "0532-87654321"}},
                               headers={"Content-Type": "application/merge-patch+json", "If-Match": etag})
        assert response.status_code == 204, response.text
        assert admin.get(f"/collections/key_places/items/{place.id}").json()["properties"]["contact"] == "0532-87654321"
        created = admin.post("/collections/key_places/items", headers={"Content-Type": "application/geo+json"}, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [place.geom.x + 1e-4, place.geom.y]},
            "properties": {"category": "clinic", "name": "Clinic", "contact": "0532-81234567",
                           "grid": place.props["grid"], "street": place.props["street"]}})
        assert created.status_code == 201, created.text
        new_id = int(created.headers["location"].rstrip("/").rsplit("/", 1)[1])
    stored = {row[0]: row[1] for row in raw_rows(city.store, "key_places", ["contact"])}
    for fid, original in ((place.id, "0532-87654321"), (new_id, "0532-81234567")):
        assert stored[fid] != original
        assert_sealed(stored[fid])
        assert city.store.key.open(stored[fid]) == original
