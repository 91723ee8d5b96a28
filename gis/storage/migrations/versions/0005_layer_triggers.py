"""The layer triggers (gis.edit.triggers) on every layer table, and the edit writer's id ledger
`onemap_edit_ids`, made part of the schema instead of being checked for at every start-up, edit
and import.

A layer table created or rebuilt later gets its triggers from the store itself
(Store._create_layer, Store.replacing), so a rebuilt layer keeps telling the app about writes
from other systems. Idempotent: tables that already have the triggers are left as they are.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
from sqlalchemy import inspect, text

from gis.edit import triggers
from gis.edit.writer import ID_TABLE

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade(store) -> None:
    conn = op.get_bind()
    ids = f'"{store.schema}".{ID_TABLE}' if store.postgis else ID_TABLE
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {ids} (layer TEXT PRIMARY KEY, last_id BIGINT NOT NULL)"))
    existing = set(inspect(conn).get_table_names(schema=store.schema))
    for layer in store.catalog:
        if layer.id in existing:
            triggers.install(conn, store.postgis, store.schema, layer.id)
