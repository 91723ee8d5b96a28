"""Heatmap layers of a tile: H3 hexagons with their whole-cell values, encoded as MVT.

A hexagon crossing tile edges carries the same full count in every tile it meets (each tile
shows it clipped to its buffered extent), so a client adds hexagons up by their `cell` id, never
by tile. Both backends share this path after the SQL: the database groups, Python draws.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h3
import numpy as np
import shapely
from sqlalchemy import ColumnElement

from gis.crs import web_mercator
from gis.storage.store import Store
from tiles.heatmap import mvt
from tiles.heatmap.definition import Heatmap
from tiles.heatmap.cells import BuiltOnce, CellCache, Rows, lifts_suppression, tile_rows
from tiles.heatmap.mvt import ring_commands
from tiles.matrix import BUFFER, EXTENT
from tiles.plan import Rendered, TilePlan

LOG = logging.getLogger("onemap.tiles")


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


@dataclass(frozen=True)
class Drawable:
    """Cells ready to draw in one kind of grid CRS: their hexagons and encoded properties."""

    cell: np.ndarray  # int64 H3 ids
    rings: list[np.ndarray]  # closed rings in the grid CRS (x/y), one per cell
    hexes: np.ndarray | None  # the same as one (n, 7, 2) array when every cell is a hexagon
    values: list[bytes]  # per cell: its property values, encoded as the layer's `values` fields
    ids: list[bytes]  # per cell: its MVT feature id field, encoded

    def take(self, index: np.ndarray) -> "Drawable":
        hexes = None if self.hexes is None else self.hexes[index]
        pick = index.tolist()
        return Drawable(
            self.cell[index], [self.rings[i] for i in pick], hexes, [self.values[i] for i in pick], [self.ids[i] for i in pick]
        )


def feature_id(cell: int) -> int:
    """The MVT feature id of a cell: its H3 index without the constant mode bits and the unused
    finest digits, so it fits the 53 bits JavaScript clients (MapLibre) keep exactly; the
    `cell` property carries the full index."""
    return (cell & ((1 << 56) - 1)) >> 9


def keys(summed: bool) -> list[str]:
    return ["cell", "count", "sum", "density"] if summed else ["cell", "count", "density"]


def drawable(rows: Rows, geographic: bool) -> Drawable:
    """Hexagons (EPSG:3857, or lon/lat for the geographic sets) and properties of these cells."""
    cells = rows.cell.tolist()
    rings = []
    for cell in cells:
        boundary = h3.cell_to_boundary(h3.int_to_str(cell))
        ring = np.array([(lng, lat) for lat, lng in boundary] + [boundary[0][::-1]], dtype=np.float64)
        rings.append(ring)
    if rings and not geographic:
        sizes = np.cumsum([len(r) for r in rings])[:-1]
        flat = np.vstack(rings)
        x, y = web_mercator().transform(flat[:, 0], flat[:, 1])
        rings = np.split(np.column_stack([x, y]), sizes)
    hexes = np.stack(rings) if rings and all(len(r) == 7 for r in rings) else None
    summed = rows.total is not None
    values = []
    for i, cell in enumerate(cells):
        value = float(rows.total[i]) if summed else float(rows.count[i])
        props = [h3.int_to_str(cell), int(rows.count[i])]
        if summed:
            props.append(_round(value))
        props.append(_round(value / h3.cell_area(h3.int_to_str(cell), "km^2")))
        values.append(b"".join(mvt.value_field(v) for v in props))
    return Drawable(rows.cell, rings, hexes, values, [mvt.id_field(feature_id(cell)) for cell in cells])


def _geometries(drawn: Drawable, plan: TilePlan) -> list[bytes]:
    """Each hexagon as encoded MVT geometry in tile units (y down, integer), clipped to the
    buffered tile; b"" where it does not meet the tile."""
    n = len(drawn.cell)
    if not n:
        return []
    minx, _, maxx, maxy = plan.bounds()
    scale = EXTENT / (maxx - minx)
    lo, hi = -BUFFER, EXTENT + BUFFER
    out: list[bytes] = [b""] * n
    rest: list[int] = list(range(n))
    if drawn.hexes is not None:  # sort the hexagons out all at once
        rings = np.rint((drawn.hexes - (minx, maxy)) * (scale, -scale))
        low, high = rings.min(axis=1), rings.max(axis=1)
        outside = (high < lo).any(axis=1) | (low > hi).any(axis=1)
        inside = (low >= lo).all(axis=1) & (high <= hi).all(axis=1)
        distinct = (np.diff(rings[:, :6], axis=1) != 0).any(axis=2).all(axis=1) & (rings[:, 5] != rings[:, 0]).any(axis=1)
        simple = np.flatnonzero(inside & distinct)  # the common case: whole, six distinct vertices
        for i, geometry in zip(simple.tolist(), mvt.hexagon_geometries(rings[simple, :6])):
            out[i] = geometry
        rest = np.flatnonzero(~outside & ~(inside & distinct)).tolist()
        polygons = shapely.polygons(rings[rest]) if rest else None  # all at once: same-length rings
    else:
        rings = [np.rint((drawn.rings[i] - (minx, maxy)) * (scale, -scale)) for i in rest]
        polygons = shapely.polygons([shapely.linearrings(r) for r in rings])
    if not rest:
        return out
    # the rest cross the buffered edge (or collapse): cut there, cut points back onto the grid
    cut = shapely.clip_by_rect(polygons, lo, lo, hi, hi)
    for i, piece in zip(rest, cut):
        if piece is None or piece.is_empty or piece.geom_type != "Polygon":
            continue
        ring = np.rint(shapely.get_coordinates(piece.exterior)).tolist()
        out[i] = mvt.encode_commands(ring_commands(ring))
    return out


def _round(value: float) -> float:
    return float(f"{value:.6g}")


class HeatTiles:
    """Renders the heatmap layers of tile plans; holds the city-wide cells per data version."""

    def __init__(self, store: Store, k: int, in_memory: bool = True, shared=None):
        self.store = store
        self.cells = CellCache(store, k, shared)
        # unfiltered tiles read the city-wide cells (built once per version); False counts every
        # tile in SQL, the reference path the tests and the benchmark compare against
        self.in_memory = in_memory
        self._drawables = BuiltOnce()  # city-wide cells ready to draw, per grid kind
        self._heatmaps: dict[str, Heatmap] = {}  # of the drawables, by id: what follow() rebuilds
        self._following: set[tuple] = set()  # rebuilds queued or running
        self._latest: dict[str, int] = {}  # the versions follow() last saw: older rebuilds are skipped
        self._background: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def from_city_cells(self, heat) -> bool:
        """Whether these layers read only the city-wide cells (no SQL per tile)."""
        return self.in_memory and all(hp.where is None for hp in heat)

    def _city_drawable(self, heatmap: Heatmap, city, key: tuple, geographic: bool) -> Drawable:
        # one drawing per slot: the tiles a cold server is asked for at once would otherwise each
        # draw the whole city's hexagons (seconds of CPU at fine resolutions) side by side. Older
        # versions go; the same version for another reader stays.
        with self._lock:
            self._heatmaps[heatmap.id] = heatmap  # before its drawing exists: follow() looks it up
        return self._drawables.get(
            (key, geographic),
            lambda: drawable(city.rows, geographic),
            lambda k: k[0][:2] == key[:2] and k[0][2] < key[2],
        )

    def warm(self, heatmap: Heatmap, res: int, version: int, geographic: bool = False, individual_access: bool = False) -> None:
        """Build what unfiltered tiles of this resolution read, ahead of the first request."""
        access = lifts_suppression(heatmap, individual_access)
        city = self.cells.city(heatmap, res, version, access)
        self._city_drawable(heatmap, city, (heatmap.id, res, version, access), geographic)

    def follow(self, versions: dict[str, int]) -> list[tuple]:
        """The layers' data versions as now read: whatever tiles drew from an older version of a
        layer (cells and hexagons per resolution, reader kind and grid kind) is rebuilt for the new
        one in the background, so the first tile after a write does not pay the city-wide GROUP BY.
        A tile asking meanwhile waits for that same build (one per key), never runs a second one.
        Returns what was queued."""
        due = []
        with self._lock:
            self._latest = dict(versions)
            for (heatmap_id, res, version, access), geographic in list(self._drawables.built):
                heatmap = self._heatmaps[heatmap_id]
                new = versions.get(heatmap.source, version)
                job = ((heatmap_id, res, new, access), geographic)
                if new > version and job not in self._drawables.built and job not in self._following:
                    self._following.add(job)
                    due.append((heatmap, res, new, access, geographic))
            if due and self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="heat-cells")
        for args in due:
            self._background.submit(self._rebuild, *args)
        return due

    def _rebuild(self, heatmap: Heatmap, res: int, version: int, access: bool, geographic: bool) -> None:
        try:
            if self._latest.get(heatmap.source, version) == version:  # else a newer one is queued
                self.warm(heatmap, res, version, geographic, access)
        except Exception:  # a store hiccup or shutdown: the next tile builds them itself
            LOG.warning("rebuilding %s cells at resolution %d failed", heatmap.id, res, exc_info=True)
        finally:
            with self._lock:
                self._following.discard(((heatmap.id, res, version, access), geographic))

    def drain(self) -> None:
        """Wait for the rebuilds queued so far (the benchmark times them, tests wait for them)."""
        if self._background is not None:
            self._background.submit(lambda: None).result()

    def close(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)

    def cells_for(self, conn, plan: TilePlan, hp: HeatPlan) -> Drawable:
        bbox = plan.grid.lonlat_bounds(plan.z, plan.x, plan.y, BUFFER)
        protected = hp.heatmap.protected and not hp.individual_access
        geographic = plan.grid.geographic
        city = None
        if protected or (self.in_memory and hp.where is None):
            city = self.cells.city(hp.heatmap, hp.res, hp.version, hp.individual_access, conn)
        if self.in_memory and hp.where is None:
            key = (hp.heatmap.id, hp.res, hp.version, lifts_suppression(hp.heatmap, hp.individual_access))
            return self._city_drawable(hp.heatmap, city, key, geographic).take(city.near_index(bbox, hp.res))
        rows = tile_rows(conn, self.store, hp.heatmap, hp.res, bbox, hp.where)
        if protected:
            if hp.where is not None:
                raise ValueError("a filtered heatmap of people would allow differencing")
            rows = rows.take(np.isin(rows.cell, city.rows.cell))
        return drawable(rows, geographic)

    def render(self, conn, plan: TilePlan, heat: list[HeatPlan]) -> Rendered:
        layers, counts = [], {}
        for hp in heat:
            drawn = self.cells_for(conn, plan, hp)
            geometries = _geometries(drawn, plan)
            kept = [i for i, g in enumerate(geometries) if g]
            counts[hp.name] = len(kept)
            if kept:
                names = keys(hp.heatmap.indicator.summed is not None)
                features = [(drawn.ids[i], drawn.values[i], geometries[i]) for i in kept]
                layers.append(mvt.layer(hp.name, names, features, EXTENT))
        # MVT layers are independent messages: a tile is their concatenation
        return Rendered(b"".join(layers), counts)
