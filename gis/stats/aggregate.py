"""Indicator values by area: one SQL `GROUP BY` per question, then small-cell suppression.

Areas: the whole city, each district, street or grid (by the codes every feature carries), each
H3 cell at a resolution (the parent of the feature's stored cell, gis.hexagons), or a polygon
the client posts. Suppression follows the indicator: where it counts people, a group with fewer
than k of them is withheld from anyone without individual access, and so are the next-smallest
groups until what is withheld is itself at least k, so the `suppressed` figure that makes the
totals reconcile never reveals one small group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h3
import shapely
from sqlalchemy import BigInteger, ColumnElement, Integer, and_, cast, func, literal, select, true

from gis import hexagons
from gis.features import cql
from gis.security.principal import current
from gis.stats.indicators import Indicator
from gis.storage.store import Store

AREAS = ("city", "district", "street", "grid", "h3")
# Polygon questions about people are answered in whole cells of this resolution (about 0.7 km²),
# each at least k or withheld: the difference of two polygons is then whole cells too, so no
# pair of overlapping polygons isolates fewer than k people.
POLYGON_RES = 8
MAX_POLYGON_CELLS = 20_000


class StatsError(ValueError):
    """A question the statistics cannot answer; the message says why."""


@dataclass
class Answer:
    indicator: Indicator
    area: str
    res: int | None
    k: int
    groups: list[tuple[str, float]]
    suppressed_groups: int = 0
    suppressed_value: float | None = 0  # None: what is withheld is itself below k
    extra: dict = field(default_factory=dict)

    @property
    def total(self) -> float | None:
        if self.suppressed_value is None:
            return None
        return sum(v for _, v in self.groups) + self.suppressed_value

    def as_json(self) -> dict:
        return {
            "indicator": self.indicator.describe(),
            "by": self.area,
            "res": self.res,
            "k": self.k if self.indicator.suppress else None,
            "total": _number(self.total),
            "groups": [{"key": key, "value": _number(value)} for key, value in self.groups],
            "suppressed": {"groups": self.suppressed_groups, "value": _number(self.suppressed_value)},
            **self.extra,
        }


def aggregate(
    store: Store,
    indicator: Indicator,
    area: str = "city",
    res: int | None = None,
    polygon: shapely.Geometry | None = None,
    k: int = 10,
    individual_access: bool = False,
) -> Answer:
    if area not in AREAS:
        raise StatsError(f"by must be one of {', '.join(AREAS)}, got {area[:40]!r}")
    if area == "h3":
        if res is None or not 0 <= res <= hexagons.FINEST_RES:
            raise StatsError(f"by=h3 needs res between 0 and {hexagons.FINEST_RES}")
    layer = store.catalog[indicator.layer]
    table = store.tables[layer.id]
    value = func.count() if indicator.summed is None else func.coalesce(func.sum(table.c[indicator.summed]), 0)
    where: list[ColumnElement] = [true()]
    area_clause = current().area_clause(layer, table)  # a caller limited to streets/grids counts there only
    if area_clause is not None:
        where.append(area_clause)
    if indicator.filter:
        where.append(cql.to_sqlalchemy(cql.parse_filter(indicator.filter), layer, table, trusted=True))
    protect = indicator.suppress and not individual_access
    extra: dict = {}
    if polygon is not None:
        if protect:
            cells = _polygon_cells(polygon)
            extra["polygon_cells"] = {"res": POLYGON_RES, "count": len(cells)}
            where.append(hexagons.parent_sql(table.c.h3, POLYGON_RES).in_(cells) if cells else literal(False))
        else:
            shape = func.ST_GeomFromText(literal(polygon.wkt), 4490)
            where.append(func.ST_Intersects(table.c.geom, shape))

    if area == "city" and polygon is not None and protect:
        # The polygon's answer is the sum of its cells of at least k; smaller cells are left out
        # without complementary suppression, so that for nested polygons the difference is a
        # sum of whole cells of at least k each. What is left out is counted, never valued.
        key = hexagons.parent_sql(table.c.h3, POLYGON_RES).label("key")
        rows = _run(store, select(key, value).select_from(table).where(and_(*where)).group_by(key))
        shown = [v for _, v in rows if v >= k]
        hidden = sum(1 for _, v in rows if 0 < v < k)
        return Answer(indicator, area, res, k, [("polygon", sum(shown))], hidden, None if hidden else 0, extra)

    if area == "district":
        statement = _by_district(store, table, value, where)
    else:
        key = _group_key(area, res, table)
        statement = select(key.label("key"), value).select_from(table).where(and_(*where)).group_by(key)
    rows = [(_key_text(area, r[0]), r[1]) for r in _run(store, statement)]
    answer = suppress(indicator, area, res, k, rows) if protect else Answer(indicator, area, res, k, sorted(rows))
    answer.extra = extra
    return answer


def _group_key(area: str, res: int | None, table) -> ColumnElement:
    if area == "city":
        return literal("city")
    if area == "h3":
        return hexagons.parent_sql(table.c.h3, res)
    return table.c[area]


def _by_district(store: Store, table, value, where: list[ColumnElement]):
    """Group by street first, from the street index alone, then add the few streets up by their
    district: joining every row to its street before grouping read the whole table."""
    streets = store.tables["streets"]
    per_street = select(table.c.street.label("street"), value.label("v")).where(and_(*where))
    per_street = per_street.group_by(table.c.street).subquery()
    # sum() of counts is numeric in PostgreSQL: back to an integer, as count() gives for other areas
    total = func.sum(per_street.c.v)
    total = cast(total, BigInteger) if isinstance(value.type, Integer) else total
    joined = per_street.outerjoin(streets, per_street.c.street == streets.c.code)
    return select(streets.c.district.label("key"), total).select_from(joined).group_by(streets.c.district)


def _key_text(area: str, key) -> str:
    if area == "h3" and key is not None:
        return h3.int_to_str(int(key))
    return "" if key is None else str(key)


def _run(store: Store, statement) -> list:
    with store.engine.connect() as conn:
        return conn.execute(statement).all()


def suppress(indicator: Indicator, area: str, res: int | None, k: int, rows: list[tuple[str, float]]) -> Answer:
    ordered = sorted(rows, key=lambda r: (r[1], r[0]))
    hidden = [r for r in ordered if 0 < r[1] < k]
    shown = [r for r in ordered if r[1] >= k or r[1] == 0]
    withheld = sum(v for _, v in hidden)
    while hidden and withheld < k and shown:
        # complementary suppression: one small withheld group must not be readable from the total
        extra = shown.pop(0)
        hidden.append(extra)
        withheld += extra[1]
    if 0 < withheld < k:
        # nothing left to hide alongside: the withheld figure itself would reveal a small group
        return Answer(indicator, area, res, k, sorted(shown), len(hidden), None)
    return Answer(indicator, area, res, k, sorted(shown), len(hidden), withheld)


def _polygon_cells(polygon: shapely.Geometry) -> list[int]:
    if polygon.is_empty or not polygon.is_valid:
        raise StatsError(f"the polygon is not valid: {shapely.is_valid_reason(polygon)}")
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(polygon))
    cells = h3.h3shape_to_cells(shape, POLYGON_RES)
    if len(cells) > MAX_POLYGON_CELLS:
        raise StatsError(f"the polygon covers {len(cells)} cells of resolution {POLYGON_RES}; the limit is {MAX_POLYGON_CELLS}")
    return [h3.str_to_int(c) for c in cells]


def _number(value):
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 6)
