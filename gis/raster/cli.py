"""`onemap load-raster` and `onemap export-raster`: population grids in, aggregates out.

Progress and the closing report go to stderr: a bar on a terminal, plain lines otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _open_store(database_url: str | None):
    from gis.settings import Settings
    from gis.storage.store import Store

    settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
    store = Store.open(settings)
    try:
        store.initialise()  # also adds pop_estimate to a store built before it existed
    except Exception as err:
        store.close()
        raise click.ClickException(f"cannot open the store {settings.database.database_url}: {err}") from None
    if not store.layer_meta("buildings").feature_count:
        store.close()
        raise click.ClickException("the store holds no buildings; load the city first (e.g. onemap demo)")
    return settings, store


class _Progress:
    """A click progress bar on a terminal; a line per tenth of the work in logs."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.reported = -1

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None:
                self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
                self.bar.__enter__()
            self.bar.update(done - self.bar.pos)
            return
        tenth = done * 10 // max(total, 1)
        if tenth > self.reported:
            self.reported = tenth
            click.echo(f"{self.label}: {done:,}/{total:,}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command("load-raster")
@click.argument("raster", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--band", type=click.IntRange(1), default=1, show_default=True, help="band holding people per cell")
@click.option("--crs", default=None, help="the raster's CRS when the file declares none, e.g. EPSG:4549")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None, help="postgresql://… or gpkg:///…")
def load_raster(raster: Path, band: int, crs: str | None, database_url: str | None) -> None:
    """Share a gridded population raster (GeoTIFF, people per cell, any CRS) out to buildings.

    Each cell's people go to the buildings whose point lies in it, by floor area, into the
    buildings' pop_estimate (indicator population_estimate). People in cells without a building
    are reported, not allocated. Replaces any earlier estimate.
    """
    from gis.raster.load import RasterError, load_raster as run

    _, store = _open_store(database_url)
    progress = _Progress("buildings updated")
    try:
        report = run(store, raster, band=band, crs=crs, progress=progress)
    except RasterError as err:
        raise click.ClickException(str(err)) from None
    finally:
        progress.close()
        store.close()
    for line in report.lines():
        click.echo(line, err=True)


@click.command("export-raster")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--indicator", required=True, help="an indicator id (see /stats/indicators)")
@click.option("--res", "metres", type=float, default=None, help="square cells of this many metres")
@click.option("--h3", "h3_res", type=int, default=None, help="H3 hexagons of this resolution")
@click.option("--pixel", type=float, default=None, help="pixel size in metres for --h3 (default: a quarter edge)")
@click.option("--crs", default="EPSG:4549", show_default=True, help="projected CRS of the raster")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None, help="postgresql://… or gpkg:///…")
def export_raster(out: Path, indicator: str, metres, h3_res, pixel, crs: str, database_url) -> None:
    """Write an indicator's aggregate as a Cloud-Optimized GeoTIFF.

    Cells with fewer than k people are nodata, counted in the tags SUPPRESSED_GROUPS and
    SUPPRESSED_VALUE, so that the raster's sum plus SUPPRESSED_VALUE is the /stats total.
    """
    from gis.aggregates.access import individual_access
    from gis.raster.export import ExportError, export_raster as run
    from gis.stats.indicators import Indicators

    settings, store = _open_store(database_url)
    try:
        registry = Indicators.load(settings.server.indicator_registry, store.catalog)
        chosen = registry.get(indicator)
        if chosen is None:
            known = ", ".join(i.id for i in registry)
            raise click.BadParameter(f"no indicator {indicator!r}; choose one of {known}", param_hint="--indicator")
        report = run(
            store, chosen, out, metres=metres, h3_res=h3_res, pixel=pixel, crs=crs,
            k=settings.server.suppression_k, individual_access=individual_access(chosen.layer),
        )
    except ExportError as err:
        raise click.ClickException(str(err)) from None
    finally:
        store.close()
    for line in report.lines():
        click.echo(line, err=True)
