"""H3 cells of features, stored once when a feature is written, aggregated in plain SQL.

Every layer row keeps `h3`, the cell (as a 64-bit integer) of its point — a building's
representative point — at `FINEST_RES`. A coarser cell is a pure bit operation on that integer
(resolution field set, finer digits set to 7), so both backends group by any resolution with
`GROUP BY` and no H3 extension in the database.

H3 cells do not nest exactly: near a cell's edge a point's own coarse cell can differ from the
parent of its fine cell. Membership is therefore defined once, as the parent of the stored
cell, and every aggregate (tiles, statistics, exports) uses that definition.
"""

from __future__ import annotations

from itertools import repeat

import h3
import numpy as np
from h3.api import basic_int as h3_int
import shapely
from sqlalchemy import BigInteger, ColumnElement, literal, type_coerce

FINEST_RES = 12
_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT


def cells(geoms: np.ndarray, res: int = FINEST_RES) -> list[int]:
    """The H3 cell of each geometry's point (lon/lat, EPSG:4490: CGCS2000 ≈ WGS 84 to cm)."""
    points = shapely.point_on_surface(geoms)
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    # the integer API and map(): no hex string per cell, no Python frame per row (an import's hot loop)
    return list(map(h3_int.latlng_to_cell, ys.tolist(), xs.tolist(), repeat(res, len(xs))))


def parent(cell: int, res: int) -> int:
    """What `parent_sql` computes, in Python: equal to h3.cell_to_parent for valid cells."""
    return (cell & ~_RES_MASK) | (res << _RES_SHIFT) | ((1 << (3 * (15 - res))) - 1)


def parent_sql(column: ColumnElement, res: int) -> ColumnElement:
    if not 0 <= res <= FINEST_RES:
        raise ValueError(f"H3 resolution must be between 0 and {FINEST_RES}, got {res}")
    keep = literal(~_RES_MASK & ((1 << 63) - 1), BigInteger)
    fill = literal((res << _RES_SHIFT) | ((1 << (3 * (15 - res))) - 1), BigInteger)
    return type_coerce(column.op("&")(keep).op("|")(fill), BigInteger)


def to_string(cell: int) -> str:
    return h3.int_to_str(cell)
