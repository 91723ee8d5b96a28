"""Where a case lies: the management grid (and so the street) around its point.

A report says where, not which grid: the grid and street codes come from the `grids` layer, so
a case is counted in the same grid by every number (/stats by grid, the grid member's scope).
The grids are read once per data version of that layer and kept in a shapely STRtree.
"""

from __future__ import annotations

import threading

import numpy as np
import shapely
from sqlalchemy import select

from gis.storage.store import Store

GRIDS = "grids"


class GridLookup:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._version: int | None = None
        self._tree: shapely.STRtree | None = None
        self._codes: list[tuple[str, str]] = []

    def locate(self, point: shapely.Point) -> tuple[str | None, str | None]:
        """(grid code, street code) of the grid containing the point; (None, None) outside every grid."""
        if GRIDS not in self.store.tables:
            return None, None
        tree, codes = self._index()
        hits = tree.query(point, predicate="intersects") if tree is not None else np.array([], dtype=int)
        if len(hits) == 0:
            return None, None
        return codes[int(min(hits))]  # a point on a shared edge: the lower index, every time

    def _index(self):
        version = self.store.layer_meta(GRIDS).version
        with self._lock:
            if version != self._version:
                table = self.store.tables[GRIDS]
                statement = select(table.c.grid_code, table.c.street, self.store.backend.as_wkb(table.c.geom))
                with self.store.engine.connect() as conn:
                    rows = conn.execute(statement.order_by(table.c.id)).all()
                self._codes = [(r[0], r[1]) for r in rows]
                self._tree = shapely.STRtree(shapely.from_wkb([bytes(r[2]) for r in rows])) if rows else None
                self._version = version
            return self._tree, self._codes
