"""Population from a gridded raster, shared out to buildings by floor area (dasymetric).

Each raster cell's people go to the buildings whose representative point (the point their H3
cell is taken from, gis.hexagons) lies in that cell, in proportion to their floor area; a cell
whose buildings have no floor area recorded splits its people equally among them. People in a
cell without any building are not invented a home: they are reported, never lost silently.

The raster is never resampled: building points are projected into the raster's own CRS and
looked up in its grid, so any CRS (or a rotated grid) gives an exact share-out, where warping
the raster first would smear people across cell edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import shapely
from rasterio.errors import RasterioIOError
from sqlalchemy import BigInteger, Column, Float, MetaData, Table, select, update

from gis.edit import triggers

from gis.storage.store import Store
from gis.storage.tables import STORAGE_SRID

LAYER = "buildings"
ESTIMATE = "pop_estimate"
WEIGHT = "floor_area_m2"
BATCH = 5_000
STAGING = "onemap_pop_estimate_staging"


class RasterError(ValueError):
    """The raster cannot be used as it is; the message says what to change."""


@dataclass
class LoadReport:
    raster_total: float  # people in the raster's valid cells
    allocated: float  # people shared out to buildings
    unallocated: float  # people in cells without a building
    unallocated_cells: int
    populated_cells: int
    buildings_estimated: int  # buildings inside the raster
    buildings_outside: int  # buildings outside it: their estimate is left empty
    equal_split_cells: int  # cells whose buildings had no floor area, split equally

    def lines(self) -> list[str]:
        return [
            f"raster total: {self.raster_total:,.2f} people in {self.populated_cells:,} populated cells",
            f"shared out to {self.buildings_estimated:,} buildings: {self.allocated:,.2f}",
            f"in {self.unallocated_cells:,} cells without a building: {self.unallocated:,.2f} (not allocated)",
            f"buildings outside the raster (estimate left empty): {self.buildings_outside:,}",
            f"cells split equally (no floor area recorded): {self.equal_split_cells:,}",
        ]


@dataclass
class Grid:
    """One band of people per cell, with where its cells are."""

    people: np.ndarray  # float64, rows x cols; 0 where the raster has no data
    transform: rasterio.Affine
    crs: pyproj.CRS


def read_grid(path: Path, band: int = 1, crs: str | None = None) -> Grid:
    try:
        with rasterio.open(path) as ds:
            if not 1 <= band <= ds.count:
                raise RasterError(f"{path.name} has {ds.count} band(s); choose --band between 1 and {ds.count}")
            data = ds.read(band, masked=True).astype("float64")
            transform = ds.transform
            source_crs = crs or (ds.crs.to_wkt() if ds.crs else None)
    except RasterioIOError as err:
        raise RasterError(f"cannot read {path}: {err}") from None
    if source_crs is None:
        raise RasterError(f"{path.name} declares no CRS; name it with --crs, e.g. --crs EPSG:4549")
    try:
        grid_crs = pyproj.CRS.from_user_input(source_crs)
    except pyproj.exceptions.CRSError as err:
        raise RasterError(f"unknown CRS {source_crs!r}: {err}") from None
    people = np.ma.filled(data, 0.0)
    people[~np.isfinite(people)] = 0.0
    if (people < 0).any():
        raise RasterError(f"{path.name} band {band} has negative people counts; set them as nodata first")
    return Grid(people, transform, grid_crs)


def building_points(store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, floor areas (0 where unknown) and representative points (lon/lat) of all buildings."""
    table = store.tables[LAYER]
    statement = select(table.c.id, table.c[WEIGHT], store.backend.as_wkb(table.c.geom)).order_by(table.c.id)
    with store.engine.connect() as conn:
        rows = conn.execute(statement).all()
    ids = np.array([r[0] for r in rows], dtype="int64")
    weights = np.array([r[1] or 0.0 for r in rows], dtype="float64")
    points = shapely.point_on_surface(shapely.from_wkb([bytes(r[2]) for r in rows])) if rows else np.array([])
    return ids, weights, points


def share_out(grid: Grid, weights: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, LoadReport]:
    """Each building's people (NaN outside the raster), and what the share-out left over."""
    rows, cols = grid.people.shape
    to_grid = pyproj.Transformer.from_crs(pyproj.CRS.from_epsg(STORAGE_SRID), grid.crs, always_xy=True)
    x, y = to_grid.transform(shapely.get_x(points), shapely.get_y(points)) if len(points) else ([], [])
    col, row = ~grid.transform * (np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"))
    col, row = np.floor(col), np.floor(row)
    inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    cell = np.where(inside, row * cols + col, 0).astype("int64")

    flat = grid.people.ravel()
    size = flat.size
    in_cell = cell[inside]
    weight_in_cell = np.bincount(in_cell, weights[inside], minlength=size)
    buildings_in_cell = np.bincount(in_cell, minlength=size)

    estimate = np.full(len(weights), np.nan)
    by_area = weight_in_cell[in_cell] > 0
    shares = np.where(
        by_area,
        weights[inside] / np.where(by_area, weight_in_cell[in_cell], 1.0),
        1.0 / np.maximum(buildings_in_cell[in_cell], 1),
    )
    estimate[inside] = flat[in_cell] * shares

    populated = flat > 0
    empty = populated & (buildings_in_cell == 0)
    report = LoadReport(
        raster_total=float(flat.sum()),
        allocated=float(np.nansum(estimate)),
        unallocated=float(flat[empty].sum()),
        unallocated_cells=int(empty.sum()),
        populated_cells=int(populated.sum()),
        buildings_estimated=int(inside.sum()),
        buildings_outside=int((~inside).sum()),
        equal_split_cells=int((populated & (buildings_in_cell > 0) & (weight_in_cell <= 0)).sum()),
    )
    return estimate, report


def load_raster(
    store: Store,
    path: Path,
    band: int = 1,
    crs: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Replace every building's population estimate with the raster's share-out, in one transaction."""
    grid = read_grid(path, band, crs)
    ids, weights, points = building_points(store)
    estimate, report = share_out(grid, weights, points)
    values = [{"id": int(i), "value": float(v)} for i, v in zip(ids.tolist(), estimate.tolist()) if not np.isnan(v)]
    _store_estimates(store, values, progress)
    return report


def _store_estimates(store: Store, values: list[dict], progress: Callable[[int, int], None] | None) -> None:
    """All estimates in one UPDATE from a staging table: on PostGIS the layer's statement trigger
    (gis.edit.triggers) then moves the data version once, not once per building."""
    table = store.tables[LAYER]
    staging = Table(STAGING, MetaData(), Column("id", BigInteger, primary_key=True), Column("value", Float(53)),
                    prefixes=["TEMPORARY"])
    with store.engine.begin() as conn:
        triggers.install(conn, store.postgis, store.schema, LAYER)
        staging.drop(conn, checkfirst=True)
        staging.create(conn)
        for start in range(0, len(values), BATCH):
            conn.execute(staging.insert(), values[start : start + BATCH])
            if progress:
                progress(min(start + BATCH, len(values)), len(values))
        share = select(staging.c.value).where(staging.c.id == table.c.id).scalar_subquery()
        conn.execute(update(table).values({ESTIMATE: share}))
        staging.drop(conn)
