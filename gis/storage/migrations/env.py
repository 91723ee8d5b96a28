"""Alembic environment: always run from OneMap (gis.storage.migrations), on a connection it owns."""

from alembic import context

from gis.storage.migrations import VERSION_TABLE

config = context.config
store = config.attributes["store"]
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    version_table_schema=store.schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations(store=store)
