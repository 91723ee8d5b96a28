"""Database engines for the two backends, with the per-connection setup each needs.

PostGIS: psycopg 3, a statement timeout on every connection.
GeoPackage: SQLite through `sqlean` (the stock `sqlite3` here cannot load extensions) with
SpatiaLite in GeoPackage "amphibious" mode, WAL, and a progress handler that aborts a
statement once it runs past the same timeout PostGIS enforces.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import sqlean
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from gis.settings import DatabaseSettings
from gis.storage.location import StoreUnavailable, gpkg_path  # noqa: F401 - both are this module's API too

SPATIALITE = "mod_spatialite"


def _bundled_proj_first() -> None:
    """Load the PROJ copies bundled in the pyproj, rasterio and pyogrio wheels before SpatiaLite's.

    SQLite loads extensions with RTLD_GLOBAL, so Debian's libproj (pulled in by SpatiaLite) would
    otherwise capture the C++ statics of every PROJ loaded after it; each copy then destroys
    them at exit (a segfault as the process ends) or, for rasterio, on first use.
    """
    import pyproj  # noqa: F401
    import pyogrio  # noqa: F401 - imports (gis.imports) read files with its GDAL
    import rasterio  # noqa: F401


def _sqlite_connect(path: Path, timeout_ms: int):
    _bundled_proj_first()

    def connect():
        conn = sqlean.connect(str(path), check_same_thread=False, timeout=timeout_ms / 1000)
        conn.enable_load_extension(True)
        try:
            conn.load_extension(SPATIALITE)
        except Exception as err:
            raise StoreUnavailable(
                "SpatiaLite could not be loaded: install Debian's libsqlite3-mod-spatialite "
                "(make run does this)"
            ) from err
        conn.enable_load_extension(False)
        conn.execute("SELECT EnableGpkgAmphibiousMode()")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-65536")
        # LIKE means the same on both backends: case-sensitive, as in PostgreSQL and CQL2
        conn.execute("PRAGMA case_sensitive_like=ON")
        bound_statements(conn, timeout_ms)
        return conn

    return connect


def bound_statements(conn, timeout_ms: int) -> None:
    """Interrupt any statement that runs past the timeout (SQLite has no statement_timeout).

    The deadline restarts whenever the connection is idle between statements, which the
    handler notices as a gap since its last call.
    """
    state = {"started": time.monotonic(), "last": time.monotonic()}
    budget = timeout_ms / 1000

    def handler() -> int:
        now = time.monotonic()
        if now - state["last"] > 0.05:  # a gap: a new statement began
            state["started"] = now
        state["last"] = now
        return 1 if now - state["started"] > budget else 0

    conn.set_progress_handler(handler, 20_000)


@contextmanager
def unbounded(conn, postgis: bool, timeout_ms: int):
    """No statement bound for the rest of this transaction's bulk work (sealing or resealing a
    city-sized table outlasts the interactive bound); the GeoPackage connection gets it back."""
    if postgis:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        yield
        return
    raw = conn.connection.driver_connection
    raw.set_progress_handler(None, 0)
    try:
        yield
    finally:
        bound_statements(raw, timeout_ms)


def session_settings(db: DatabaseSettings) -> dict[str, str]:
    """The settings every PostgreSQL connection of OneMap starts with (tiles add their own)."""
    return {
        "statement_timeout": str(db.statement_timeout_ms),
        "search_path": f"{db.schema_name},public",
        "application_name": "onemap",
    }


def libpq_options(settings: dict[str, str]) -> str:
    """Session settings as libpq's `options` connection parameter."""
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


def open_engine(db: DatabaseSettings) -> Engine:
    if db.is_postgis:
        url = db.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(
            url,
            pool_size=db.pool_size,
            max_overflow=db.pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            connect_args={"options": libpq_options(session_settings(db)), "connect_timeout": 5},
        )
        return engine

    path = gpkg_path(db.database_url)
    engine = create_engine(
        "sqlite://",
        # the driver the connections come from: its errors are then SQLAlchemy's (OperationalError,
        # DBAPIError) as on PostGIS; under the stdlib's module they escaped every such handler
        module=sqlean.dbapi2,
        creator=_sqlite_connect(path, db.statement_timeout_ms),
        poolclass=QueuePool,
        pool_size=db.pool_size,
        max_overflow=db.pool_size,
    )

    # pysqlite's implicit transactions would defer BEGIN past our first statement;
    # issue BEGIN ourselves so that each SQLAlchemy transaction is one SQLite transaction.
    @event.listens_for(engine, "connect")
    def _no_implicit_tx(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # writers ask for IMMEDIATE (execution option `onemap_write`): they take the write lock up
        # front and wait for it, instead of failing when a read-then-write races another writer
        immediate = conn.get_execution_options().get("onemap_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
