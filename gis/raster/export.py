"""An indicator's aggregate as a Cloud-Optimized GeoTIFF, suppressed as every other output.

Two pixel grids, both in a projected CRS (metres):
- `metres`: square cells of that size. A feature belongs to the cell holding the centre of its
  stored H3 cell (gis.hexagons, resolution 12, about 9 m across), so the raster is built from
  the same `GROUP BY` as /stats and never re-reads features.
- `h3`: the hexagons of /stats?by=h3&res=R, drawn onto pixels: each hexagon's value is shared
  equally by the pixels whose centres it holds (one pixel if it holds none), so pixel sums stay
  the hexagon's value and the raster's sum is the /stats total.
Withheld cells (fewer than k people, and their complementary cells) are nodata; the figure
that makes the totals reconcile is in the tags SUPPRESSED_GROUPS and SUPPRESSED_VALUE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pyproj
import rasterio
import rasterio.features
import rasterio.shutil
import shapely
from rasterio.transform import from_origin

from gis import hexagons
from gis.stats.aggregate import aggregate, suppress
from gis.stats.indicators import Indicator
from gis.storage.store import Store
from gis.storage.tables import STORAGE_SRID

NODATA = -9999.0
MAX_PIXELS = 40_000_000
BLOCK = 256


class ExportError(ValueError):
    """The export cannot be made as asked; the message says what to change."""


@dataclass
class ExportReport:
    path: Path
    width: int
    height: int
    pixel_m: float
    crs: str
    total: float | None  # the /stats city total; None when the withheld figure is itself withheld
    raster_sum: float
    suppressed_groups: int
    suppressed_value: float | None

    def lines(self) -> list[str]:
        withheld = "withheld" if self.suppressed_value is None else f"{self.suppressed_value:,.6g}"
        return [
            f"wrote {self.path} ({self.width} x {self.height} pixels of {self.pixel_m:g} m, {self.crs})",
            f"raster sum {self.raster_sum:,.6g}; suppressed {self.suppressed_groups} cells worth {withheld}",
        ]


def export_raster(
    store: Store,
    indicator: Indicator,
    out: Path,
    *,
    metres: float | None = None,
    h3_res: int | None = None,
    pixel: float | None = None,
    crs: str = "EPSG:4549",
    k: int = 10,
    individual_access: bool = False,
) -> ExportReport:
    if (metres is None) == (h3_res is None):
        raise ExportError("give either --res METRES (square cells) or --h3 RES (hexagons), not both")
    try:
        target = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise ExportError(f"unknown CRS {crs!r}: {err}") from None
    if not target.is_projected:
        raise ExportError(f"{crs} is not a projected CRS; pixels are sized in metres, e.g. --crs EPSG:4549")
    project = pyproj.Transformer.from_crs(pyproj.CRS.from_epsg(STORAGE_SRID), target, always_xy=True)
    protect = indicator.suppress and not individual_access
    if metres is not None:
        if not metres > 0:
            raise ExportError(f"--res must be a positive number of metres, got {metres}")
        image, transform, suppressed = _square_cells(store, indicator, metres, project, k, protect)
        size = metres
    else:
        if not 0 <= h3_res <= hexagons.FINEST_RES:
            raise ExportError(f"--h3 must be between 0 and {hexagons.FINEST_RES}, got {h3_res}")
        size = pixel or _default_pixel(h3_res)
        image, transform, suppressed = _hexagons(store, indicator, h3_res, size, project, k, protect)
    groups, withheld = suppressed
    raster_sum = float(image[image != NODATA].sum())
    total = None if withheld is None else raster_sum + withheld
    tags = {
        "ONEMAP_INDICATOR": indicator.id,
        "ONEMAP_DEFINITION": indicator.definition,
        "ONEMAP_UNIT": indicator.unit,
        "ONEMAP_CELLS": f"{metres:g} m squares" if metres is not None else f"H3 resolution {h3_res}",
        "ONEMAP_K": str(k) if protect else "",
        "SUPPRESSED_GROUPS": str(groups),
        "SUPPRESSED_VALUE": "" if withheld is None else repr(float(withheld)),
        "TOTAL": "" if total is None else repr(total),
    }
    _write_cog(out, image, transform, target, tags, indicator)
    height, width = image.shape
    return ExportReport(out, width, height, size, target.to_string(), total, raster_sum, groups, withheld)


def _default_pixel(res: int) -> float:
    # four pixels per hexagon edge: every hexagon holds a dozen or more pixel centres
    edge = h3.average_hexagon_edge_length(res, unit="m")
    return float(f"{edge / 4:.2g}")


def _raw_groups(store: Store, indicator: Indicator, res: int) -> dict[int, float]:
    # individual access here only to know which cells to blank; suppression follows below
    answer = aggregate(store, indicator, "h3", res, individual_access=True)
    return {h3.str_to_int(key): float(value) for key, value in answer.groups if value}


def _protected(indicator: Indicator, k: int, protect: bool, values: dict) -> tuple[set, int, float | None]:
    """The keys shown, and the count and value of what is withheld."""
    if not protect:
        return set(values), 0, 0.0
    answer = suppress(indicator, "grid", None, k, [(str(key), v) for key, v in values.items()])
    kept = {key for key, _ in answer.groups}
    shown = {key for key in values if str(key) in kept}
    return shown, answer.suppressed_groups, answer.suppressed_value


def _square_cells(store, indicator, metres, project, k, protect):
    fine = _raw_groups(store, indicator, hexagons.FINEST_RES)
    if not fine:
        raise ExportError(f"{indicator.id} has no features to export")
    cells = list(fine)
    lat, lon = np.array([h3.cell_to_latlng(h3.int_to_str(c)) for c in cells]).T
    x, y = project.transform(lon, lat)
    minx, maxy = np.floor(x.min() / metres) * metres, (np.floor(y.max() / metres) + 1) * metres
    width = int(np.floor(x.max() / metres) + 1 - np.floor(x.min() / metres))
    height = int(np.floor(y.max() / metres) + 1 - np.floor(y.min() / metres))
    _check_size(width, height)
    col = np.floor((x - minx) / metres).astype("int64")
    row = np.floor((maxy - y) / metres).astype("int64")
    index = row * width + col
    sums = np.bincount(index, np.array([fine[c] for c in cells]), minlength=width * height)
    values = {int(i): float(sums[i]) for i in np.flatnonzero(sums)}
    shown, groups, withheld = _protected(indicator, k, protect, values)
    image = sums.copy()
    image[[i for i in values if i not in shown]] = NODATA
    return image.reshape(height, width), from_origin(minx, maxy, metres, metres), (groups, withheld)


def _hexagons(store, indicator, res, pixel, project, k, protect):
    values = _raw_groups(store, indicator, res)
    if not values:
        raise ExportError(f"{indicator.id} has no features to export")
    cells = list(values)
    shapes = []
    for cell in cells:
        ring = h3.cell_to_boundary(h3.int_to_str(cell))  # (lat, lon) pairs
        xs, ys = project.transform([p[1] for p in ring], [p[0] for p in ring])
        shapes.append(shapely.Polygon(zip(xs, ys)))
    bounds = shapely.total_bounds(shapes)
    minx, miny = np.floor(bounds[0] / pixel) * pixel, np.floor(bounds[1] / pixel) * pixel
    maxx, maxy = np.ceil(bounds[2] / pixel) * pixel, np.ceil(bounds[3] / pixel) * pixel
    width, height = int(round((maxx - minx) / pixel)), int(round((maxy - miny) / pixel))
    _check_size(width, height)
    transform = from_origin(minx, maxy, pixel, pixel)
    owner = rasterio.features.rasterize(
        ((shape, i + 1) for i, shape in enumerate(shapes)), out_shape=(height, width), transform=transform, dtype="int32"
    ).ravel()
    pixels = np.bincount(owner, minlength=len(cells) + 1)[1:]
    shown, groups, withheld = _protected(indicator, k, protect, values)
    per_pixel = np.array([values[c] / max(pixels[i], 1) for i, c in enumerate(cells)])
    blank = np.array([c not in shown for c in cells])
    image = np.zeros(width * height)
    drawn = owner > 0
    image[drawn] = np.where(blank[owner[drawn] - 1], NODATA, per_pixel[owner[drawn] - 1])
    for i in np.flatnonzero((pixels == 0) & ~blank):
        # a hexagon smaller than a pixel keeps its value in the pixel under its centre
        centre = shapely.centroid(shapes[i])
        c, r = ~transform * (centre.x, centre.y)
        spot = int(r) * width + int(c)
        image[spot] = per_pixel[i] + (image[spot] if image[spot] != NODATA else 0.0)
    return image.reshape(height, width), transform, (groups, withheld)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ExportError(
            f"the raster would be {width} x {height} pixels (limit {MAX_PIXELS:,}); use larger cells"
            " (--res) or a coarser --h3 resolution, or a larger --pixel"
        )


def _write_cog(out: Path, image: np.ndarray, transform, crs: pyproj.CRS, tags: dict, indicator: Indicator) -> None:
    height, width = image.shape
    profile = dict(
        driver="GTiff", width=width, height=height, count=1, dtype="float64",
        crs=rasterio.crs.CRS.from_wkt(crs.to_wkt()), transform=transform, nodata=NODATA,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.MemoryFile() as memory:
        with memory.open(**profile) as ds:
            ds.write(image, 1)
            ds.update_tags(**tags)
            ds.set_band_description(1, f"{indicator.id} ({indicator.unit})")
        with memory.open() as ds:
            # overviews are for display: a coarser pixel shows the mean of its parts (GDAL has no SUM here)
            rasterio.shutil.copy(
                ds, out, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=str(BLOCK),
                OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
            )
