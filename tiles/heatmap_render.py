"""Heatmap layers of a tile: H3 hexagons with their whole-cell values, encoded as MVT.

A hexagon crossing tile edges carries the same full count in every tile it meets (each tile
shows it clipped to its buffered extent), so a client adds hexagons up by their `cell` id, never
by tile. Both backends share this path after the SQL: the database groups, Python draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import h3
import mapbox_vector_tile
import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import ColumnElement

from gis.storage.store import Store
from tiles.heatmap import Heatmap
from tiles.heatmap_cells import CellCache, Rows, tile_rows
from tiles.matrix import BUFFER, EXTENT
from tiles.plan import Rendered, TilePlan

_TO_MERCATOR = Transformer.from_crs(4490, 3857, always_xy=True)
_ENCODE_OPTIONS = {"extents": EXTENT, "y_coord_down": True, "check_winding_order": True}


@dataclass(frozen=True)
class HeatPlan:
    """One heatmap layer of one tile."""

    heatmap: Heatmap
    res: int
    version: int  # the source layer's data version: city-wide cells are kept per version
    where: ColumnElement | None = None  # a client's filter over the source layer
    individual_access: bool = False

    @property
    def name(self) -> str:
        return self.heatmap.id


@lru_cache(maxsize=200_000)
def _ring(cell: int) -> np.ndarray:
    """The cell's boundary, lon/lat, closed."""
    latlng = h3.cell_to_boundary(h3.int_to_str(cell))
    ring = np.array([(lng, lat) for lat, lng in latlng], dtype=np.float64)
    return np.vstack([ring, ring[:1]])


@lru_cache(maxsize=200_000)
def _area_km2(cell: int) -> float:
    return h3.cell_area(h3.int_to_str(cell), "km^2")


def _hexagons(cells: np.ndarray, plan: TilePlan) -> list:
    """Each cell's hexagon in tile units (y down, integer), clipped to the buffered tile; None
    where it does not meet the tile."""
    if not len(cells):
        return []
    rings = [_ring(int(c)) for c in cells]
    sizes = [len(r) for r in rings]
    coords = np.vstack(rings)
    if not plan.grid.geographic:
        x, y = _TO_MERCATOR.transform(coords[:, 0], coords[:, 1])
        coords = np.column_stack([x, y])
    minx, _, maxx, maxy = plan.bounds()
    scale = EXTENT / (maxx - minx)
    units = np.rint(np.column_stack([(coords[:, 0] - minx) * scale, (maxy - coords[:, 1]) * scale]))
    if len(set(sizes)) == 1:
        polygons = shapely.polygons(units.reshape(len(rings), sizes[0], 2))
    else:  # pentagons among hexagons
        polygons = np.array([shapely.Polygon(p) for p in np.split(units, np.cumsum(sizes)[:-1])], dtype=object)
    lo, hi = -BUFFER, EXTENT + BUFFER
    clipped = shapely.clip_by_rect(polygons, lo, lo, hi, hi)
    clipped = shapely.transform(clipped, np.rint)  # cut points onto the integer grid
    out = []
    for geom in clipped:
        if geom is None or geom.is_empty or geom.geom_type != "Polygon" or geom.area < 1.0:
            out.append(None)
        else:
            out.append(geom)
    return out


def _features(heatmap: Heatmap, rows: Rows, geoms: list) -> list[dict]:
    features = []
    summed = rows.total is not None
    for i, geom in enumerate(geoms):
        if geom is None:
            continue
        cell = int(rows.cell[i])
        props = {"cell": h3.int_to_str(cell), "count": int(rows.count[i])}
        value = float(rows.total[i]) if summed else float(rows.count[i])
        if summed:
            props["sum"] = _round(value)
        props["density"] = _round(value / _area_km2(cell))
        features.append({"geometry": geom, "properties": props, "id": cell})
    return features


def _round(value: float) -> float:
    return float(f"{value:.6g}")


class HeatTiles:
    """Renders the heatmap layers of tile plans; holds the city-wide cells per data version."""

    def __init__(self, store: Store, k: int, in_memory: bool = True):
        self.store = store
        self.cells = CellCache(store, k)
        # unfiltered tiles read the city-wide cells (built once per version); False counts every
        # tile in SQL, the reference path the tests and the benchmark compare against
        self.in_memory = in_memory

    def rows(self, conn, plan: TilePlan, hp: HeatPlan) -> Rows:
        bbox = plan.grid.lonlat_bounds(plan.z, plan.x, plan.y, BUFFER)
        protected = hp.heatmap.protected and not hp.individual_access
        city = None
        if protected or (self.in_memory and hp.where is None):
            city = self.cells.city(hp.heatmap, hp.res, hp.version, hp.individual_access, conn)
        if self.in_memory and hp.where is None:
            return city.near(bbox, hp.res)
        rows = tile_rows(conn, self.store, hp.heatmap, hp.res, bbox, hp.where)
        if protected:
            if hp.where is not None:
                raise ValueError("a filtered heatmap of people would allow differencing")
            rows = rows.take(np.isin(rows.cell, city.rows.cell))
        return rows

    def render(self, conn, plan: TilePlan, heat: list[HeatPlan]) -> Rendered:
        layers, counts = [], {}
        for hp in heat:
            rows = self.rows(conn, plan, hp)
            features = _features(hp.heatmap, rows, _hexagons(rows.cell, plan))
            counts[hp.name] = len(features)
            if features:
                layers.append({"name": hp.name, "features": features})
        if not layers:
            return Rendered(b"", counts)
        return Rendered(mapbox_vector_tile.encode(layers, default_options=_ENCODE_OPTIONS), counts)
