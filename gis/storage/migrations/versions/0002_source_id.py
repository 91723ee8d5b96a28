"""Every layer table gains `source_id` (the row's key in the system it was imported from) and a
unique index on it, so `onemap load` can upsert.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from sqlalchemy import inspect, text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade(store) -> None:
    conn = op.get_bind()
    inspector = inspect(conn)
    existing = set(inspector.get_table_names(schema=store.schema))
    for layer in store.catalog:
        if layer.id not in existing:
            continue  # created later from the layer file, with the column
        qualified = f'"{store.schema}"."{layer.id}"' if store.postgis else f'"{layer.id}"'
        columns = {c["name"] for c in inspector.get_columns(layer.id, schema=store.schema)}
        if "source_id" not in columns:
            conn.execute(text(f"ALTER TABLE {qualified} ADD COLUMN source_id TEXT"))
        conn.execute(text(f'CREATE UNIQUE INDEX IF NOT EXISTS "{layer.id}_source_id" ON {qualified} (source_id)'))
