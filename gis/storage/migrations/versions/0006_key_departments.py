"""API keys may name departments (`departments`): a department handler of the case loop acts on
the cases dispatched to its own departments only (gis.cases). A store whose key table is made
later gets the column from gis.security.tables.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from sqlalchemy import inspect, text

from gis.security.tables import KEYS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade(store) -> None:
    conn = op.get_bind()
    inspector = inspect(conn)
    if not inspector.has_table(KEYS, schema=store.schema):
        return
    if "departments" not in {c["name"] for c in inspector.get_columns(KEYS, schema=store.schema)}:
        qualified = f'"{store.schema}"."{KEYS}"' if store.postgis else f'"{KEYS}"'
        conn.execute(text(f"ALTER TABLE {qualified} ADD COLUMN departments TEXT"))
