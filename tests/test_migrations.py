"""Schema migrations: a store built before a column existed is upgraded in place, keeping every
row, feature id and data version, and /readyz says whether the schema is current.

The "old" store is made the way one really is: a store built and loaded, then stripped of what
later revisions add (the `source_id` column and its index) and of the migration history.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from gis.app.factory import create_app
from gis.cli import main
from gis.edit import triggers
from gis.edit.writer import ID_TABLE
from gis.storage import migrations
from tests.conftest import LiveServer, free_port
from tests.imports_support import cli_env, close_store, onemap_load, open_store, rows

POINTS = '{"type":"FeatureCollection","features":[%s]}'
FEATURE = ('{"type":"Feature","properties":{"SID":"%s","type_code":"0125","type_name":"lamp","owner_dept":"roads",'
           '"status":"normal"},"geometry":{"type":"Point","coordinates":[%f,%f]}}')


def lamps(path, n):
    path.write_text(POINTS % ",".join(FEATURE % (f"L{i}", 120 + i * 1e-3, 30 + i * 1e-3) for i in range(n)))
    return path


def make_old(store) -> None:
    """Undo revisions 0002 and 0005 and forget the history: the store as built before migrations
    (no source ids; the layer triggers and the edit id ledger were made at start-up then)."""
    with store.engine.begin() as conn:
        if not store.postgis:
            # SpatiaLite writes these GeoPackage triggers with SQL newer SQLite refuses to re-parse,
            # which DROP COLUMN does; OneMap never writes metadata references, so they can go
            for (name,) in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'gpkg_metadata_reference'"
            )).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        for layer in store.catalog:
            qualified = f'"{store.schema}"."{layer.id}"' if store.postgis else f'"{layer.id}"'
            index = f'"{store.schema}"."{layer.id}_source_id"' if store.postgis else f'"{layer.id}_source_id"'
            conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
            conn.execute(text(f"ALTER TABLE {qualified} DROP COLUMN source_id"))
            for op in ("insert", "update", "delete", "truncate", "h3"):
                if store.postgis:
                    conn.execute(text(f"DROP TRIGGER IF EXISTS onemap_changed_{op} ON {qualified}"))
                else:
                    conn.execute(text(f'DROP TRIGGER IF EXISTS "onemap_{layer.id}_{op}"'))
            assert not triggers.installed(conn, store.postgis, store.schema, layer.id)
        ids = f'"{store.schema}".{ID_TABLE}' if store.postgis else ID_TABLE
        conn.execute(text(f"DROP TABLE IF EXISTS {ids}"))
        version = f'"{store.schema}"."{migrations.VERSION_TABLE}"' if store.postgis else f'"{migrations.VERSION_TABLE}"'
        conn.execute(text(f"DROP TABLE {version}"))


def migrate(store, *args):
    env = {k: v for k, v in cli_env(store).items() if k.startswith("ONEMAP_")}
    return CliRunner().invoke(main, ["migrate", *args], env=env)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture()
def store(backend, tmp_path):
    store = open_store(backend, tmp_path, "migrate")
    result = onemap_load(store, lamps(tmp_path / "lamps.geojson", 30), "--layer", "urban_components", "--source-id", "SID")
    assert result.returncode == 0, result.stderr
    yield store
    close_store(store)


def snapshot(store):
    with store.engine.connect() as conn:
        meta = sorted(tuple(r) for r in conn.execute(store.meta.select()).all())
    return rows(store, "urban_components", "id, type_code, type_name, owner_dept, status, h3, ST_AsText(geom)"), meta


def test_an_old_store_is_upgraded_in_place(store, tmp_path):
    make_old(store)
    before = snapshot(store)
    assert migrate(store, "--check").exit_code == 1
    result = migrate(store)
    assert result.exit_code == 0, result.output
    assert "upgraded from none (pre-migration store) to" in result.output
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("urban_components", schema=store.schema)}
        assert migrations.current(conn, store) == migrations.head()
        assert all(triggers.installed(conn, store.postgis, store.schema, layer.id) for layer in store.catalog)
        assert inspect(conn).has_table(ID_TABLE, schema=store.schema)
    assert "source_id" in columns
    assert snapshot(store) == before  # every row, id and data version kept
    assert migrate(store, "--check").exit_code == 0
    assert "already current" in migrate(store).output
    # the upgraded store takes an upserting import: the old rows had no source id, so these are new
    result = onemap_load(store, lamps(tmp_path / "again.geojson", 3), "--layer", "urban_components", "--source-id", "SID")
    assert result.returncode == 0 and "3 inserted" in result.stdout, result.stderr
    assert store.layer_meta("urban_components").feature_count == 33  # counted by the restored triggers
    result = onemap_load(store, lamps(tmp_path / "again.geojson", 3), "--layer", "urban_components", "--source-id", "SID")
    assert "0 inserted, 0 updated, 3 unchanged" in result.stdout


def test_readyz_reports_whether_the_schema_is_current(store):
    port = free_port()
    app = create_app(store.settings, store)
    with LiveServer(app, port) as server:
        status, body = get(f"{server.url}/readyz")
        assert status == 200 and body["schema"] == "current"
        make_old(store)
        status, body = get(f"{server.url}/readyz")
        assert status == 503 and "behind" in body["schema"] and "onemap migrate" in body["schema"]
        assert migrate(store).exit_code == 0
        status, body = get(f"{server.url}/readyz")
        assert status == 200 and body["schema"] == "current"
