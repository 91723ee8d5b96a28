"""Schema migrations (Alembic) for the store's own tables and the derived layer tables' columns."""
