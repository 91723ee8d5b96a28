"""`onemap demo`: build the demo city into the configured store."""

from __future__ import annotations

import sys
import time
from urllib.parse import urlsplit, urlunsplit

import click

BULK_TIMEOUT_MS = 3_600_000  # index builds over a million rows outlast the interactive 15 s bound


@click.command("demo")
@click.option("--scale", default=0.05, show_default=True, type=click.FloatRange(0.001, 10.0),
              help="size of the city: 1 is Pingdu's full 1.36 million residents, 0.05 a quick demo")
@click.option("--seed", default=42, show_default=True, type=int, help="random seed; the same seed gives the same city")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None,
              help="postgresql://… or gpkg:///…  [default: ONEMAP_DATABASE_URL, else data/onemap.gpkg]")
@click.option("--force", is_flag=True, help="rebuild even if the store already holds a city")
def demo(scale: float, seed: int, database_url: str | None, force: bool) -> None:
    """Fill every layer with a deterministic demo city modelled on Pingdu, Shandong.

    Districts, streets and management grids nest without gaps; buildings, residents, key
    places, cameras and urban components carry the codes of the grid and street they lie in.
    Each layer is replaced in one transaction, so a failed build leaves the previous one.
    Scale 0.05 takes seconds; scale 1 (about 200,000 buildings and 1.36 million residents)
    takes minutes.
    """
    from gis.settings import Settings

    overrides: dict = {"statement_timeout_ms": BULK_TIMEOUT_MS}
    if database_url:
        overrides["database_url"] = database_url
    try:
        settings = Settings.from_env(**overrides)
    except Exception as err:  # pydantic's report names the bad setting
        _fail(f"invalid settings: {err}", "check ONEMAP_DATABASE_URL or --database-url")
    where = _redact(settings.database.database_url)
    try:
        counts, elapsed = _build(settings, scale, seed, force, where)
    except click.exceptions.Exit:
        raise
    except Exception as err:  # the operator gets a next step, not a traceback
        _fail(*_explain(err, where))
    if counts is None:
        return
    width = max(len(k) for k in counts)
    click.echo("")
    click.echo(f"{'layer'.ljust(width)}  {'features':>10}")
    for layer, n in counts.items():
        click.echo(f"{layer.ljust(width)}  {n:>10,}")
    click.echo(f"{'total'.ljust(width)}  {sum(counts.values()):>10,}")
    click.echo(f"built in {elapsed:.1f} s (scale {scale:g}, seed {seed}) into {where}")


def _build(settings, scale: float, seed: int, force: bool, where: str):
    from gis.demo.city import build_demo
    from gis.storage.store import Store

    if not settings.database.is_postgis:
        from gis.storage.engine import gpkg_path

        gpkg_path(settings.database.database_url).parent.mkdir(parents=True, exist_ok=True)
    store = Store.open(settings)
    try:
        with store.engine.connect():  # is_built() reads an unreachable store as empty: ask first
            pass
        if not force and store.is_built():
            click.echo(f"{where} already holds a city; pass --force to rebuild it")
            return None, 0.0
        click.echo(f"Building the demo city (scale {scale:g}, seed {seed}) into {where}")
        started = time.monotonic()
        reporter = _Reporter(sys.stdout.isatty())
        try:
            counts = build_demo(store, scale=scale, seed=seed, progress=reporter)
        finally:
            reporter.close()
        return counts, time.monotonic() - started
    finally:
        store.close()


class _Reporter:
    """A bar per layer on a terminal; one line per batch otherwise (logs, CI)."""

    def __init__(self, tty: bool):
        self.tty = tty
        self.layer: str | None = None
        self.bar = None
        self.done = 0

    def __call__(self, layer: str, done: int, total: int) -> None:
        if not self.tty:
            click.echo(f"{layer}: {done:,}/{total:,}")
            return
        if layer != self.layer:
            self.close()
            self.layer, self.done = layer, 0
            self.bar = click.progressbar(length=max(total, 1), label=layer.ljust(16), show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _explain(err: Exception, where: str) -> tuple[str, str]:
    from sqlalchemy.exc import DBAPIError, OperationalError

    from gis.storage.engine import StoreUnavailable

    if isinstance(err, StoreUnavailable):
        return str(err), "fix the store settings and run `onemap demo` again"
    if isinstance(err, OperationalError):
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        return (
            f"cannot reach the database {where}: {reason}",
            "start PostgreSQL (`make run` does), or pass --database-url gpkg:///path/to/city.gpkg "
            "to build into an embedded GeoPackage instead",
        )
    if type(err).__module__.startswith(("sqlean", "sqlite3")):  # raised by the GeoPackage connector itself
        return (
            f"cannot open the GeoPackage {where}: {err}",
            "check that its directory is writable, or pass --database-url with another gpkg:/// path",
        )
    if isinstance(err, DBAPIError):
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        return f"the database refused the build: {reason}", "check that the user may create tables and extensions"
    if isinstance(err, OSError):
        return f"cannot use {where}: {err}", "check the path and its permissions"
    if isinstance(err, (ValueError, FileNotFoundError)):
        return str(err), "fix the layer definitions in layers/ and run `onemap demo` again"
    return f"{type(err).__name__}: {err}", "this is a bug in the demo generator; please report it with the command line"


def _fail(message: str, hint: str) -> None:
    click.echo(f"Error: {message}", err=True)
    click.echo(f"Next: {hint}", err=True)
    raise click.exceptions.Exit(1)


def _redact(url: str) -> str:
    """The URL without its password, fit for a terminal or a log."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
