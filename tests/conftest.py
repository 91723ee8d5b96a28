"""Shared fixtures: the demo city in both backends, and the whole app over real HTTP.

Every test that takes `store` or `live_server` runs twice, once on the embedded GeoPackage
store and once on PostGIS (`ONEMAP_TEST_POSTGRES_URL`, default the local onemap_test database
that `make test` prepares). The demo city is built once per session per backend.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from gis.app.factory import create_app
from gis.demo.city import build_demo
from gis.settings import DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store

POSTGRES_URL = os.environ.get(
    "ONEMAP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/onemap_test"
)
SCALE = float(os.environ.get("ONEMAP_TEST_SCALE", "0.02"))
SEED = int(os.environ.get("ONEMAP_TEST_SEED", "7"))
# one schema per test session, so two runs against one database never meet
SCHEMA = f"onemap_test_{os.getpid()}"
BACKENDS = ("geopackage", "postgis")
# The protocol tests run under tests/roles/mechanics.yml (the shipped policy, but the anonymous
# caller also sees cameras); CLI subprocesses inherit it. tests/test_security_*.py build their
# own servers on the shipped layers/roles/roles.yml.
MECHANICS_ROLES = Path(__file__).resolve().parent / "roles" / "mechanics.yml"
os.environ.setdefault("ONEMAP_ROLES_FILE", str(MECHANICS_ROLES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT postgis_version()"))
    except Exception as err:
        pytest.fail(
            f"PostGIS is not reachable at {POSTGRES_URL} ({str(err).splitlines()[0]}): "
            "run `make test`, which starts PostgreSQL and creates the database, "
            "or set ONEMAP_TEST_POSTGRES_URL"
        )
    finally:
        engine.dispose()
    return POSTGRES_URL


def settings_for(database_url: str, port: int = 5000, **server: object) -> Settings:
    database = DatabaseSettings(database_url=database_url, schema_name=SCHEMA)
    server.setdefault("roles_file", Path(os.environ["ONEMAP_ROLES_FILE"]))
    return Settings(database, ServerSettings(port=port, tile_cache_dir=None, **server))


@pytest.fixture(scope="session")
def built_stores(tmp_path_factory) -> Iterator[dict[str, tuple[Store, dict[str, int]]]]:
    """Lazily built: a run of GeoPackage-only tests never touches PostgreSQL."""
    built: dict[str, tuple[Store, dict[str, int]]] = {}

    def get(backend: str) -> tuple[Store, dict[str, int]]:
        if backend not in built:
            if backend == "postgis":
                url = POSTGRES_URL
                _drop_schema(url)
            else:
                url = f"gpkg:///{tmp_path_factory.mktemp('store') / 'city.gpkg'}"
            store = Store.open(settings_for(url))
            store.initialise()
            counts = build_demo(store, scale=SCALE, seed=SEED)
            built[backend] = (store, counts)
        return built[backend]

    yield get  # type: ignore[misc]
    for store, _ in built.values():
        store.close()  # before interpreter exit: native libraries must not outlive their users
    if "postgis" in built:
        _drop_schema(POSTGRES_URL)


def _drop_schema(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgis":
        request.getfixturevalue("postgres_url")
    return request.param


@pytest.fixture(scope="session")
def store(backend, built_stores) -> Store:
    return built_stores(backend)[0]


@pytest.fixture(scope="session")
def demo_counts(backend, built_stores) -> dict[str, int]:
    return built_stores(backend)[1]


class LiveServer:
    """uvicorn serving the whole app in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app, port: int):
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def live_server_settings(store) -> Settings:
    port = free_port()
    settings = settings_for(store.settings.database.database_url, port=port)
    settings.server.base_url = f"http://127.0.0.1:{port}"
    return settings


@pytest.fixture(scope="session")
def live_server(store, live_server_settings) -> Iterator[str]:
    app = create_app(live_server_settings, store)
    with LiveServer(app, live_server_settings.server.port) as server:
        yield server.url


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
