"""Baseline: the store as built before migrations existed (layer tables, onemap_layers).

Nothing to do: Store.initialise creates these; the revision marks where history starts.

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(store) -> None:
    pass
