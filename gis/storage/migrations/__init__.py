"""Schema migrations (Alembic): an existing store is upgraded in place, never rebuilt.

Layer tables are derived from the layer files, so a new layer is simply created with the
current columns (gis.storage.store) and a new attribute becomes a new column; what needs a
migration is everything else: OneMap's own tables and the columns every layer table gains
(e.g. `source_id`). Revisions live in `versions/`; each works on both backends and is
idempotent, so a store created at head and then stamped is no different from an upgraded one.

Migrations run automatically whenever a store is initialised (server start, `onemap load`,
`onemap demo`), inside the same transaction as the rest of the initialisation, serialised
between processes on PostGIS by an advisory lock (on the GeoPackage, SQLite's single writer);
`onemap migrate` runs them on their own, and `onemap migrate --check` reports without writing.
/readyz answers 503 until the schema is at head.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, text

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "onemap_schema_version"
_LOCK_KEY = 0x0E3A_5C4E  # PostGIS advisory lock: one migrating process at a time


def _config(store, conn: Connection | None = None):
    from alembic.config import Config  # imported when used: Alembic costs a third of a second

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["store"] = store
    config.attributes["connection"] = conn
    return config


@lru_cache(maxsize=1)
def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()


def current(conn: Connection, store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "version_table_schema": store.schema}
    )
    return context.get_current_revision()


def upgrade(conn: Connection, store) -> tuple[str | None, str]:
    """Bring the store to head on `conn` (inside its transaction); (revision before, head)."""
    from alembic import command

    if store.postgis:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    before = current(conn, store)
    target = head()
    if before != target:
        command.upgrade(_config(store, conn), "head")
    return before, target


def status(store) -> dict:
    """For /readyz and `onemap migrate --check`: where the schema is and where it should be."""
    with store.engine.connect() as conn:
        revision = current(conn, store)
    target = head()
    return {"revision": revision, "head": target, "current": revision == target}
