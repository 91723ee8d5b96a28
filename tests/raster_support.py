"""Helpers for the raster tests: the `onemap` CLI as a subprocess on the test store, and a
population GeoTIFF the tests write themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from gis.cli import main

from gis.storage.store import Store

REPO = Path(__file__).resolve().parent.parent


def onemap(store: Store, *args: str, separate_process: bool = False) -> subprocess.CompletedProcess:
    """Run an `onemap` subcommand on the test store: in this process through click's runner
    (fast), or as the real command in its own process."""
    env = {
        "ONEMAP_DATABASE_URL": store.settings.database.database_url,
        "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name,
    }
    argv = [str(a) for a in args]
    if separate_process:
        return subprocess.run(
            [sys.executable, "-m", "gis.cli", *argv],
            cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=120,
        )
    result = CliRunner(env=env).invoke(main, argv)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # as a real run would print it
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, stderr)


def write_population_raster(path: Path, store: Store, crs: str = "EPSG:3857", cell: float = 700.0) -> None:
    """People per cell over the buildings' extent and a margin of cells beyond it, in `crs`."""
    minx, miny, maxx, maxy = store.layer_meta("buildings").bbox
    to_crs = pyproj.Transformer.from_crs(4490, crs, always_xy=True)
    xs, ys = to_crs.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    left, top = min(xs) - 3 * cell, max(ys) + 3 * cell
    width = int((max(xs) - left) / cell) + 4
    height = int((top - min(ys)) / cell) + 4
    people = np.random.default_rng(11).integers(0, 40, (height, width)).astype("float32")
    people[0, 0] = -1  # nodata: counted nowhere
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
        crs=crs, transform=from_origin(left, top, cell, cell), nodata=-1,
    ) as ds:
        ds.write(people, 1)
