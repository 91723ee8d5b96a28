"""Generalisation by zoom: which layers a tile carries and how much detail each keeps.

Everything derives from a layer's definition (`zoom.min/max` in WebMercator levels and its geometry
type), so both generation paths (PostGIS and Python) apply the very same rules:

- a layer is in a tile only when the tile's level maps to a WebMercator level inside its zoom range;
- lines and polygons are simplified by snapping to a half-pixel grid (8 MVT units) below
  `zoom.max - 2`, and otherwise only to the 4096-unit tile grid; repeated and collinear vertices go,
  and anything that collapses (or keeps under one square unit) disappears, as ST_AsMVTGeom does.
  Grid snapping rather than Douglas-Peucker because it is plain arithmetic: PostGIS and shapely
  give bit-identical results, where their simplifiers (different GEOS versions) do not;
- points are thinned in their first three levels: one point per cell of 8, 4, then 2 screen pixels
  (128, 64, 32 MVT units), the one with the lowest feature id. Cells are aligned to the tile grid, so
  the same point survives in neighbouring tiles and the result does not depend on the path;
- a tile is held to `TILE_BUDGET_BYTES`. One that would exceed it is rendered again keeping, in each
  layer with more than `BUDGET_MIN_FEATURES` features in the tile, only the features whose id is a
  multiple of 2, then 4, 8, ... until it fits. The step taken is returned with the tile (the HTTP
  answer carries it as `OneMap-Thinned: 1/<n>`), so nothing is ever truncated arbitrarily or silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.catalog import GeometryType, Layer

PIXEL_UNITS = 16  # MVT units per screen pixel (4096 units over 256 px)
SIMPLIFY_UNITS = PIXEL_UNITS // 2
THIN_CELLS_PX = (8, 4, 2)
TILE_BUDGET_BYTES = 500_000
BUDGET_MIN_FEATURES = 256
BUDGET_MAX_STEPS = 12  # 1/4096 of the features: past that the data, not the rule, is the problem


@dataclass(frozen=True)
class Detail:
    """How one layer is drawn at one level."""

    grid_units: float  # generalisation grid in MVT units; 0 = only the 1-unit tile grid
    thin_cell: int  # points: keep one per cell of this many MVT units; 0 = keep all


def detail(layer: Layer, web_zoom: int) -> Detail | None:
    """The layer's detail at a WebMercator level, or None when the layer is not shown there."""
    if not layer.zoom.min <= web_zoom <= layer.zoom.max:
        return None
    if layer.geometry is GeometryType.Point:
        step = web_zoom - layer.zoom.min
        cell = THIN_CELLS_PX[step] * PIXEL_UNITS if step < len(THIN_CELLS_PX) else 0
        return Detail(grid_units=0.0, thin_cell=cell)
    simplify = SIMPLIFY_UNITS if web_zoom < layer.zoom.max - 2 else 0.0
    return Detail(grid_units=float(simplify), thin_cell=0)


def budget_modulus(step: int) -> int:
    """Budget step 0 keeps every feature; step k keeps ids divisible by 2**k."""
    return 1 << step


POLICY = {
    "tileBudgetBytes": TILE_BUDGET_BYTES,
    "overBudget": (
        f"a tile that would exceed {TILE_BUDGET_BYTES} bytes is rendered again keeping, in every layer with more "
        f"than {BUDGET_MIN_FEATURES} features in that tile, only features whose id is a multiple of 2, 4, 8, ... "
        "until it fits; the response header OneMap-Thinned gives the fraction kept (e.g. 1/4)"
    ),
    "simplification": (
        f"lines and polygons: vertices snapped to a {SIMPLIFY_UNITS}-unit (half-pixel) grid below the layer's "
        "zoom.max - 2, to the 4096-unit tile grid otherwise; collapsed parts and rings under 1 unit^2 dropped"
    ),
    "pointThinning": (
        "points, first three levels of a layer's zoom range: one point per 8, 4, 2 pixel cell (lowest id wins)"
    ),
    "emptyTile": "a tile with no feature is answered 204 No Content",
}
