"""Helpers for the import specs: an empty store per backend, store checksums, running `onemap load`.

Imports write, so they never touch the session's demo city: each test module gets its own
store (a fresh PostGIS schema, or a fresh GeoPackage file).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from sqlalchemy import create_engine, inspect, text

from gis.settings import DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store
from tests.conftest import POSTGRES_URL, SCHEMA

REPO = Path(__file__).resolve().parent.parent
ONEMAP = [sys.executable, "-m", "gis.cli"]


def open_store(backend: str, tmp: Path, suffix: str) -> Store:
    if backend == "postgis":
        url, schema = POSTGRES_URL, f"{SCHEMA}_{suffix}"
        drop_schema(schema)
    else:
        url, schema = f"gpkg:///{tmp / f'{suffix}.gpkg'}", "onemap"
    store = Store.open(Settings(DatabaseSettings(database_url=url, schema_name=schema), ServerSettings(tile_cache_dir=None)))
    store.initialise()
    return store


def drop_schema(schema: str) -> None:
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def close_store(store: Store) -> None:
    schema = store.schema
    store.close()
    if store.postgis:
        drop_schema(schema)


def checksums(store: Store) -> dict[str, str]:
    """A digest of every table's full contents (all columns, all rows in key order), per table."""
    out = {}
    with store.engine.connect() as conn:
        if store.postgis:
            for name in inspect(conn).get_table_names(schema=store.schema):
                out[name] = conn.execute(
                    text(f'SELECT md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) FROM "{store.schema}"."{name}" t')
                ).scalar_one()
        else:
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").scalars().all()
            for name in names:
                rows = conn.exec_driver_sql(f'SELECT * FROM "{name}"').all()
                digest = hashlib.sha256()
                for row in sorted(repr(tuple(r)) for r in rows):
                    digest.update(row.encode())
                out[name] = digest.hexdigest()
    return out


def cli_env(store: Store) -> dict[str, str]:
    env = dict(os.environ)
    env["ONEMAP_DATABASE_URL"] = store.settings.database.database_url
    env["ONEMAP_SCHEMA_NAME"] = store.settings.database.schema_name
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def onemap_load(store: Store, *args: str) -> Run:
    """`onemap load` in this process (click's runner: a subprocess pays seconds of imports)."""
    from gis.cli import main

    env = {k: v for k, v in cli_env(store).items() if k.startswith("ONEMAP_")}
    result = CliRunner().invoke(main, ["load", *map(str, args)], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def onemap_load_process(store: Store, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ONEMAP, "load", *map(str, args)], env=cli_env(store), cwd=REPO, capture_output=True, text=True,
        timeout=timeout,
    )


def rows(store: Store, layer: str, columns: str) -> list[tuple]:
    table = f'"{store.schema}"."{layer}"' if store.postgis else f'"{layer}"'
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY id")).all()]


def lonlat(store: Store, layer: str) -> list[tuple[str, float, float]]:
    """(source_id, lon, lat) of each point, read with the database's own functions."""
    return [(r[0], float(r[1]), float(r[2])) for r in rows(store, layer, "source_id, ST_X(geom), ST_Y(geom)")]
