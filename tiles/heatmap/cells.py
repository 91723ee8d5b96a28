"""Indicator values per H3 cell: one SQL `GROUP BY` on the parent of every feature's stored cell.

Two readings, equal by construction and held equal by the tests:

- the whole city at one resolution (`CityCells`), kept per data version: the statement /stats runs
  for `by=h3`, followed by the same suppression rule, so the hexagons a tile shows are exactly the
  cells /stats shows, and the style's colour quantiles come from it;
- one tile (`tile_rows`): the features inside the tile's extent grown by a few cell sizes, grouped
  by cell. A cell whose hexagon meets the tile has all its features that close (a member's stored
  cell lies within about 1.6 edge lengths of its parent's centre), so the cells kept, those whose
  hexagon meets the tile, carry their whole count; cells cut by the grown extent lie too far out
  to meet the tile and are dropped with the hexagon test.

Suppression (`visible_cells`) is the one decision for who sees which cells: it takes
`individual_access`, so roles can be wired in without touching the aggregation.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import h3
import numpy as np
from sqlalchemy import Numeric, and_, cast, func, select, true

from gis import hexagons
from gis.features import cql
from gis.stats.aggregate import suppress
from gis.storage.store import Store
from tiles.heatmap.definition import Heatmap

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON = 111.320
# the largest H3 edge at a resolution is well under 1.5 times the average one away from the poles
EDGE_SLACK = 1.5
SQL_MARGIN_EDGES = 3.5  # members lie within ~2.6 edges of a tile their cell's hexagon meets
CENTRE_MARGIN_EDGES = 1.2  # a hexagon meets the tile only if its centre is within one edge of it


@dataclass(frozen=True)
class Rows:
    """Cells with their values, sorted by cell id. `total` is None for count indicators."""

    cell: np.ndarray  # int64 H3 ids
    count: np.ndarray  # int64
    total: np.ndarray | None  # float64 sums

    def __len__(self) -> int:
        return len(self.cell)

    def take(self, mask: np.ndarray) -> "Rows":
        return Rows(self.cell[mask], self.count[mask], None if self.total is None else self.total[mask])

    def value(self) -> np.ndarray:
        """What the indicator measures per cell: the count, or the sum."""
        return self.count.astype(np.float64) if self.total is None else self.total


@dataclass(frozen=True)
class CityCells:
    """The indicator over the whole city at one resolution, after suppression."""

    rows: Rows  # the cells shown
    lon: np.ndarray  # their centres
    lat: np.ndarray
    suppressed_groups: int
    suppressed_value: float | None

    def near_index(self, bbox: tuple[float, float, float, float], res: int) -> np.ndarray:
        """The cells whose hexagon may meet the box: centres within a (generous) edge of it."""
        minx, miny, maxx, maxy = grow(bbox, res, CENTRE_MARGIN_EDGES)
        mask = (self.lon >= minx) & (self.lon <= maxx) & (self.lat >= miny) & (self.lat <= maxy)
        return np.flatnonzero(mask)


def grow(bbox: tuple[float, float, float, float], res: int, edges: float) -> tuple[float, float, float, float]:
    """A lon/lat box grown on every side by `edges` (generous) edge lengths of resolution `res`."""
    minx, miny, maxx, maxy = bbox
    km = edges * EDGE_SLACK * h3.average_hexagon_edge_length(res, "km")
    lat = min(max(abs(miny), abs(maxy)) + km / KM_PER_DEG_LAT, 89.0)
    dlon = km / (KM_PER_DEG_LON * math.cos(math.radians(lat)))
    dlat = km / KM_PER_DEG_LAT
    return max(minx - dlon, -180.0), max(miny - dlat, -90.0), min(maxx + dlon, 180.0), min(maxy + dlat, 90.0)


def statement(store: Store, heatmap: Heatmap, res: int, bbox=None, where=None):
    """SELECT cell, count(*)[, sum] ... GROUP BY cell: the indicator per cell at `res`."""
    layer = store.catalog[heatmap.source]
    table = store.tables[layer.id]
    cell = hexagons.parent_sql(table.c.h3, res).label("cell")
    columns = [cell, func.count().label("n")]
    summed = heatmap.indicator.summed
    if summed is not None:
        column = table.c[summed]
        if store.postgis:
            # exact, so a cell's sum does not depend on the order parallel workers add it up in:
            # the city-wide and the per-tile readings must agree to the last bit
            column = cast(column, Numeric)
        columns.append(func.coalesce(func.sum(column), 0).label("total"))
    conditions = [true()]
    if heatmap.indicator.filter:
        node = cql.parse_filter(heatmap.indicator.filter)
        conditions.append(cql.to_sqlalchemy(node, layer, table, trusted=True))
    if where is not None:
        conditions.append(where)
    if bbox is not None:
        conditions.append(store.backend.bbox_clause(table, bbox))
    return select(*columns).where(and_(*conditions)).group_by(cell)


def _rows(result, summed: bool) -> Rows:
    rows = sorted(result, key=lambda r: int(r[0]))
    cell = np.array([int(r[0]) for r in rows], dtype=np.int64)
    count = np.array([int(r[1]) for r in rows], dtype=np.int64)
    total = np.array([float(r[2]) for r in rows], dtype=np.float64) if summed else None
    return Rows(cell, count, total)


def lifts_suppression(heatmap: Heatmap, individual_access: bool) -> bool:
    """Whether a reader's individual access changes what these hexagons show: only for people.

    Cells are cached per this value, not the reader's access itself: a role that reads buildings
    one by one sees the same floor-area cells as the public, and must not build them twice."""
    return heatmap.protected and individual_access


def visible_cells(heatmap: Heatmap, res: int, rows: Rows, k: int, individual_access: bool) -> tuple[Rows, int, float | None]:
    """The cells a reader may see, and what is withheld: /stats' rule (small and complementary
    cells of people), applied to the whole city's cells at `res`."""
    if not heatmap.protected or individual_access:
        return rows, 0, 0
    keyed = [(h3.int_to_str(int(c)), float(v)) for c, v in zip(rows.cell, rows.value())]
    answer = suppress(heatmap.indicator, "h3", res, k, keyed)  # /stats' own rule, by its own function
    shown = np.array(sorted(h3.str_to_int(key) for key, _ in answer.groups), dtype=np.int64)
    return rows.take(np.isin(rows.cell, shown)), answer.suppressed_groups, answer.suppressed_value


class BuiltOnce:
    """Values built once per key however many threads ask at once: the others wait for that one
    build. When a value lands, the keys `stale` names go (older data versions of the same thing;
    versions only grow, so a build finishing late never drops a newer one)."""

    def __init__(self):
        self.built: dict = {}
        self._locks: dict = {}
        self._guard = threading.Lock()

    def get(self, key, build, stale):
        found = self.built.get(key)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            found = self.built.get(key)
            if found is None:
                found = build()
                with self._guard:
                    for old in [k for k in self.built if stale(k)]:
                        self.built.pop(old, None)
                    self.built[key] = found
                    self._locks.pop(key, None)
        return found


class CellCache:
    """City-wide cells per (heatmap, resolution, data version, access), each built once."""

    def __init__(self, store: Store, k: int, shared=None):
        self.store = store
        self.k = k
        self.shared = shared  # tiles.heatmap.shared.SharedCells: one build per host, not per process
        self._cells = BuiltOnce()
        self.derived: dict[tuple, object] = {}  # what is computed from the cells (style ramps), per version

    def city(self, heatmap: Heatmap, res: int, version: int, individual_access: bool = False, conn=None) -> CityCells:
        individual_access = lifts_suppression(heatmap, individual_access)
        return self._cells.get(
            (heatmap.id, res, version, individual_access),
            lambda: self._build_or_read(heatmap, res, version, individual_access, conn),
            lambda k: k[0] == heatmap.id and k[1] == res and k[2] < version,
        )

    def _build_or_read(self, heatmap: Heatmap, res: int, version: int, individual_access: bool, conn) -> CityCells:
        def build() -> CityCells:
            return self._build(heatmap, res, individual_access, conn)

        if self.shared is None:
            return build()
        # another worker of this host may have built them: keyed by the layer's data state
        state = (version, self.store.layer_meta(heatmap.source).updated_at)
        return self.shared.fetch((repr(heatmap), res, individual_access, self.k), state, build)

    def _build(self, heatmap: Heatmap, res: int, individual_access: bool, conn) -> CityCells:
        query = statement(self.store, heatmap, res)
        if conn is None:
            with self.store.engine.connect() as own:
                result = own.execute(query).all()
        else:
            result = conn.execute(query).all()
        rows = _rows(result, heatmap.indicator.summed is not None)
        shown, groups, value = visible_cells(heatmap, res, rows, self.k, individual_access)
        centres = [h3.cell_to_latlng(h3.int_to_str(int(c))) for c in shown.cell]
        lat = np.array([c[0] for c in centres], dtype=np.float64)
        lon = np.array([c[1] for c in centres], dtype=np.float64)
        return CityCells(shown, lon, lat, groups, value)


def tile_rows(conn, store: Store, heatmap: Heatmap, res: int, bbox, where) -> Rows:
    """The cells of the features near one tile, counted in SQL."""
    grown = grow(bbox, res, SQL_MARGIN_EDGES)
    result = conn.execute(statement(store, heatmap, res, grown, where)).all()
    return _rows(result, heatmap.indicator.summed is not None)
