"""Feature queries over a layer table: one where-clause builder for items, counts and tiles'
callers, keyset or offset paging, and rows read as (id, properties, WKB).

All SQL of the Features API is built here with SQLAlchemy, so it runs unchanged on PostGIS and
on the GeoPackage store; the few geometry functions that differ come from the backend.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import shapely
from sqlalchemy import Boolean, ColumnElement, Select, and_, func, literal, select, text, true

from gis.catalog import AttrType, Layer
from gis.features import cql
from gis.security.encryption import readable
from gis.security.masking import masked
from gis.security.principal import current
from gis.storage.store import Store


class QueryError(ValueError):
    """A parameter the query cannot use; the message names it."""


@dataclass
class FeatureQuery:
    bbox: tuple[float, float, float, float] | None = None  # lon/lat, EPSG:4490
    datetime: str | None = None  # an instant or an interval "a/b" with ".." for open ends
    equals: Sequence[tuple[str, str]] = ()
    filter: object | None = None  # a pygeofilter AST
    sortby: Sequence[tuple[str, bool]] = ()  # (property, ascending)
    properties: Sequence[str] | None = None
    skip_geometry: bool = False
    offset: int = 0
    limit: int = 10
    after: int | None = None
    ids: Sequence[int] | None = None

    def signature(self) -> str:
        """What identifies the set of matching features (not the page): the count cache key."""
        return repr((self.bbox, self.datetime, tuple(self.equals), repr(self.filter), self.ids))

    @property
    def unfiltered(self) -> bool:
        return not (self.bbox or self.datetime or self.equals or self.filter is not None or self.ids)


@dataclass
class Page:
    rows: list[tuple[int, dict, bytes | None]]
    number_matched: int | None = None
    elapsed_ms: float = 0.0
    extra: dict = field(default_factory=dict)


class LayerQueries:
    """SQL for one layer of one store."""

    def __init__(self, store: Store, layer: Layer):
        self.store = store
        self.layer = layer
        self.table = store.tables[layer.id]
        # who asks decides which attributes exist, which are masked, and which rows (gis.security)
        principal = current()
        self.visible = {a.name: (a, masked) for a, masked in principal.attributes(layer)}
        self.public = {name: a for name, (a, masked) in self.visible.items() if not masked}
        self.area = principal.area_clause(layer, self.table)

    # -- where ---------------------------------------------------------------------------------

    def where(self, query: FeatureQuery) -> ColumnElement:
        clauses: list[ColumnElement] = [] if self.area is None else [self.area]
        table = self.table
        if query.ids is not None:
            clauses.append(table.c.id.in_(list(query.ids)))
        if query.bbox is not None:
            minx, miny, maxx, maxy = query.bbox
            envelope = func.ST_GeomFromText(literal(shapely.box(minx, miny, maxx, maxy).wkt), 4490)
            clauses.append(self.store.backend.bbox_clause(table, query.bbox))
            # the index compares float32 envelopes: a superset; the exact test decides
            clauses.append(func.ST_Intersects(table.c.geom, envelope, type_=Boolean()))
        if query.datetime:
            clauses.append(self._datetime(query.datetime))
        for name, raw in query.equals:
            clauses.append(readable(table, self.public[name]) == self._typed(name, raw))
        if query.filter is not None:
            clauses.append(cql.to_sqlalchemy(query.filter, self.layer, table))
        return and_(true(), *clauses)

    def _typed(self, name: str, raw: str):
        kind = self.public[name].type
        try:
            if kind is AttrType.integer:
                return int(raw)
            if kind is AttrType.number:
                return float(raw)
            if kind is AttrType.boolean:
                if raw.lower() not in ("true", "false"):
                    raise ValueError
                return raw.lower() == "true"
            if kind is AttrType.date:
                return dt.date.fromisoformat(raw)
            if kind is AttrType.datetime:
                return _instant(raw)
        except ValueError:
            raise QueryError(f"{name}={raw[:40]!r}: {name} is a {kind.value}") from None
        return raw

    def _datetime(self, value: str) -> ColumnElement:
        if not self.layer.temporal:
            raise QueryError(f"{self.layer.id} has no time: datetime cannot be used on it")
        column = self.table.c[self.layer.temporal]
        is_date = self.layer.attr(self.layer.temporal).type is AttrType.date
        try:
            if "/" in value:
                start, end = value.split("/", 1)
                clauses = []
                if start not in ("", ".."):
                    clauses.append(column >= _bound(start, is_date, upper=False))
                if end not in ("", ".."):
                    clauses.append(column <= _bound(end, is_date, upper=True))
                return and_(column.is_not(None), *clauses)
            if is_date:
                return column == _instant(value).date() if "T" in value else column == dt.date.fromisoformat(value)
            return column == _instant(value)
        except ValueError:
            raise QueryError(f"datetime {value[:60]!r} is not an RFC 3339 instant or interval") from None

    # -- select ----------------------------------------------------------------------------------

    def columns(self, query: FeatureQuery) -> list[str]:
        names = list(self.visible)
        if query.properties:
            unknown = [p for p in query.properties if p not in self.visible]
            if unknown:
                raise QueryError(f"properties: {', '.join(unknown)} not in {self.layer.id}'s properties")
            names = [n for n in names if n in query.properties]
        return names

    def column(self, name: str) -> ColumnElement:
        """An attribute as the caller may read it: masked in SQL when its class asks."""
        attribute, is_masked = self.visible[name]
        value = readable(self.table, attribute)  # decrypted in SQL when sealed at rest
        if is_masked:
            return masked(value, attribute.sensitivity).label(name)
        return value.label(name)

    def page_statement(self, query: FeatureQuery) -> Select:
        table = self.table
        names = self.columns(query)
        selected = [table.c.id, *(self.column(n) for n in names)]
        if not query.skip_geometry:
            selected.append(self.store.backend.as_wkb(table.c.geom).label("wkb"))
        statement = select(*selected).where(self.where(query))
        order = []
        for name, ascending in query.sortby:
            if name != "id" and name not in self.public:
                raise QueryError(f"sortby: {name!r} is not a sortable property of {self.layer.id}")
            column = table.c.id if name == "id" else readable(table, self.public[name])
            # NULLs last either way, so both backends page in one order
            order.append(column.asc().nulls_last() if ascending else column.desc().nulls_last())
        order.append(table.c.id.asc())
        statement = statement.order_by(*order).limit(query.limit)
        if query.after is not None and not query.sortby:
            return statement.where(table.c.id > query.after)
        return statement.offset(query.offset) if query.offset else statement

    def read_page(self, query: FeatureQuery) -> Page:
        started = time.perf_counter()
        names = self.columns(query)
        with self.store.engine.connect() as conn:
            result = conn.execute(self.page_statement(query)).all()
        rows = []
        for row in result:
            props = {name: json_value(value) for name, value in zip(names, row[1 : 1 + len(names)])}
            wkb = None if query.skip_geometry else row[-1]
            rows.append((int(row[0]), props, None if wkb is None else bytes(wkb)))
        return Page(rows, elapsed_ms=(time.perf_counter() - started) * 1000)

    def count(self, query: FeatureQuery, budget_ms: int) -> int | None:
        """Exact count, or None when it would take longer than `budget_ms` (PostGIS)."""
        statement = select(func.count()).select_from(self.table).where(self.where(query))
        with self.store.engine.connect() as conn:
            if self.store.postgis:
                with conn.begin():
                    conn.execute(text(f"SET LOCAL statement_timeout = {int(budget_ms)}"))
                    try:
                        return int(conn.execute(statement).scalar_one())
                    except Exception as err:  # only the timeout is expected here
                        if "statement timeout" in str(err) or "canceling statement" in str(err):
                            return None
                        raise
            return int(conn.execute(statement).scalar_one())


def _instant(raw: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _bound(raw: str, is_date: bool, upper: bool):
    if is_date:
        return _instant(raw).date() if "T" in raw else dt.date.fromisoformat(raw)
    if "T" not in raw:  # a bare date as an interval end covers that whole day
        day = dt.date.fromisoformat(raw)
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return moment + dt.timedelta(days=1, microseconds=-1) if upper else moment
    return _instant(raw)


def json_value(value):
    """A stored value as GeoJSON carries it: instants in UTC with a Z, dates as ISO dates."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
