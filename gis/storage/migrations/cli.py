"""`onemap migrate`: bring an existing store's schema up to date (also done at every start)."""

from __future__ import annotations

import sys

import click


@click.command("migrate")
@click.option("--check", is_flag=True, help="only report whether the schema is current (exit 1 if not)")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None, help="postgresql://… or gpkg:///…")
def migrate(check: bool, database_url: str | None) -> None:
    """Upgrade the store's schema to the newest revision, in one transaction.

    The server and `onemap load` do this by themselves when they open the store; run it alone
    to upgrade ahead of a deployment, or with --check to see where a store stands.
    """
    from sqlalchemy.exc import DBAPIError

    from gis.settings import Settings
    from gis.storage import migrations
    from gis.storage.engine import StoreUnavailable
    from gis.storage.store import Store

    settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
    try:
        store = Store.open(settings)
    except (StoreUnavailable, ValueError) as err:
        raise click.ClickException(str(err)) from None
    try:
        if check:
            state = migrations.status(store)
            click.echo(f"schema revision {state['revision'] or 'none'}, newest {state['head']}: "
                       + ("current" if state["current"] else "behind; run `onemap migrate`"))
            sys.exit(0 if state["current"] else 1)
        before = migrations.status(store)["revision"]
        store.initialise()  # creates what is missing, then upgrades
        after = migrations.status(store)["revision"]
    except DBAPIError as err:
        raise click.ClickException(
            f"the store failed ({str(err.orig).strip().splitlines()[0]}); nothing was changed. "
            "Check that the database is up and ONEMAP_DATABASE_URL is right, then run it again"
        ) from None
    finally:
        store.close()
    if before == after:
        click.echo(f"schema already current (revision {after})")
    else:
        click.echo(f"schema upgraded from {before or 'none (pre-migration store)'} to {after}")
