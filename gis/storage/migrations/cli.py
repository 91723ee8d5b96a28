"""`onemap migrate`: bring an existing store's schema up to date."""

from __future__ import annotations

import click


@click.command("migrate")
def migrate() -> None:
    """Upgrade the store's schema (not yet implemented)."""
    raise click.ClickException("not implemented yet")
