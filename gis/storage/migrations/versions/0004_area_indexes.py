"""Layer tables with `grid` or `street` codes gain a B-tree on each (gis.storage.tables.AREA_COLUMNS),
so /stats by grid, street or district reads an index, not every row, for the whole city.

New and reloaded tables get them from Backend.index_layer; this brings stores built before. An
index-only scan also needs the table's visibility map set: VACUUM cannot run inside this
transaction, so it is left to `onemap demo` (after every load), autovacuum or the operator.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
from sqlalchemy import inspect, text

from gis.storage.engine import unbounded
from gis.storage.tables import create_area_indexes

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade(store) -> None:
    conn = op.get_bind()
    existing = set(inspect(conn).get_table_names(schema=store.schema))
    # indexing a city-sized table outlasts the interactive statement bound
    with unbounded(conn, store.postgis, store.settings.database.statement_timeout_ms):
        for layer in store.catalog:
            if layer.id not in existing:
                continue  # created later from the layer file, with its indexes
            qualified = f'"{store.schema}"."{layer.id}"' if store.postgis else f'"{layer.id}"'
            create_area_indexes(conn, store.tables[layer.id], qualified)
            conn.execute(text(f"ANALYZE {qualified}"))
