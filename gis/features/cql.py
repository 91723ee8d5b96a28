"""CQL2 filters: parsed by pygeofilter (as pygeoapi parses them), checked against a layer's
queryables, and translated to a SQLAlchemy where-clause that runs on either backend.

One module serves the Features API and the tiles, so both accept and refuse the same filters.
Geometry literals come in two forms: straight from a client (CRS84, lon/lat) or after pygeoapi
has moved them into the storage CRS, tagged EPSG:4490 in its authority order (lat/lon).
"""

from __future__ import annotations

import datetime as dt
import json

import shapely
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from sqlalchemy import Boolean, ColumnElement, Table, and_, func, literal, not_, or_, true

from gis.catalog import AttrType, Layer
from gis.security.encryption import readable
from gis.security.principal import current

MAX_DEPTH = 32
MAX_NODES = 1000
MAX_TEXT = 20_000
GEOMETRY_NAMES = ("geometry", "geom")


class FilterError(ValueError):
    """The filter cannot be used; the message says why, in terms a client can act on."""


def parse_filter(text: str, lang: str | None = None) -> ast.Node:
    if len(text) > MAX_TEXT:
        raise FilterError(f"filter is {len(text)} characters long; the limit is {MAX_TEXT}")
    lang = lang or "cql2-text"
    try:
        if lang == "cql2-json":
            return parse_cql2_json(json.loads(text))
        if lang == "cql2-text":
            return parse_cql2_text(text)
    except RecursionError:
        raise FilterError(f"filter nests too deeply (the limit is {MAX_DEPTH} levels)") from None
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FilterError(f"cannot parse {lang} filter: {first_line[:200]}") from None
    raise FilterError(f"filter-lang {lang!r} is not supported; use cql2-text or cql2-json")


def queryables(layer: Layer, trusted: bool = False) -> dict[str, AttrType]:
    """What a filter may name: the public attributes, or every attribute for filters the city
    itself wrote (indicator definitions), never for a client's."""
    if trusted:
        return {"id": AttrType.integer, **{a.name: a.type for a in layer.attributes}}
    # a client's filter may name what the caller sees unmasked, nothing else: a filter on a
    # masked or hidden attribute would read it back one comparison at a time (gis.security)
    plain = [a for a, masked in current().attributes(layer) if not masked]
    return {"id": AttrType.integer, **{a.name: a.type for a in plain}}


def validate(node: ast.Node, layer: Layer, trusted: bool = False) -> None:
    """Refuses what the translator would refuse, before any SQL is built."""
    _Translator(layer, None, trusted).check(node)


def to_sqlalchemy(node: ast.Node, layer: Layer, table: Table, trusted: bool = False) -> ColumnElement:
    return _Translator(layer, table, trusted).clause(node)


def where_clause(text: str, lang: str | None, layer: Layer, table: Table) -> ColumnElement:
    """Parse, check and translate in one step: what the tiles' `filter` parameter needs."""
    return to_sqlalchemy(parse_filter(text, lang), layer, table)


_COMPARISONS = {
    ast.Equal: "__eq__",
    ast.NotEqual: "__ne__",
    ast.LessThan: "__lt__",
    ast.LessEqual: "__le__",
    ast.GreaterThan: "__gt__",
    ast.GreaterEqual: "__ge__",
}

_SPATIAL = {
    ast.SpatialComparisonOp.INTERSECTS: "ST_Intersects",
    ast.SpatialComparisonOp.DISJOINT: "ST_Disjoint",
    ast.SpatialComparisonOp.CONTAINS: "ST_Contains",
    ast.SpatialComparisonOp.WITHIN: "ST_Within",
    ast.SpatialComparisonOp.TOUCHES: "ST_Touches",
    ast.SpatialComparisonOp.CROSSES: "ST_Crosses",
    ast.SpatialComparisonOp.OVERLAPS: "ST_Overlaps",
    ast.SpatialComparisonOp.EQUALS: "ST_Equals",
}


class _Translator:
    """Walks the AST once; with `table=None` it only checks (names, types, depth, size)."""

    def __init__(self, layer: Layer, table: Table | None, trusted: bool = False):
        self.layer = layer
        self.table = table
        self.fields = queryables(layer, trusted)
        self.nodes = 0

    def check(self, node) -> None:
        self.clause(node)

    def clause(self, node, depth: int = 0):
        self.nodes += 1
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests too deeply (the limit is {MAX_DEPTH} levels)")
        if self.nodes > MAX_NODES:
            raise FilterError(f"filter has more than {MAX_NODES} terms")
        if isinstance(node, ast.And):
            return self._combine(and_, node, depth)
        if isinstance(node, ast.Or):
            return self._combine(or_, node, depth)
        if isinstance(node, ast.Not):
            return self._sql(lambda: not_(inner), inner := self.clause(node.sub_node, depth + 1))
        if isinstance(node, ast.Include):
            return self._sql(lambda: true() if not node.not_ else not_(true()))
        if isinstance(node, tuple(_COMPARISONS)):
            column, value = self._column_and_value(node.lhs, node.rhs)
            return self._sql(lambda: getattr(column, _COMPARISONS[type(node)])(value))
        if isinstance(node, ast.Between):
            column, low = self._column_and_value(node.lhs, node.low)
            _, high = self._column_and_value(node.lhs, node.high)
            return self._sql(lambda: (column.between(low, high) if not node.not_ else not_(column.between(low, high))))
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.In):
            column, _ = self._column_and_value(node.lhs, None)
            items = [self._value(node.lhs, v) for v in node.sub_nodes]
            return self._sql(lambda: column.in_(items) if not node.not_ else column.not_in(items))
        if isinstance(node, ast.IsNull):
            # sealing keeps NULL as NULL: test the stored column, with no decryption per row
            column = None if self.table is None else self.table.c[self._name(node.lhs)]
            return self._sql(lambda: column.is_(None) if not node.not_ else column.is_not(None))
        if isinstance(node, ast.SpatialComparisonPredicate):
            return self._spatial(node)
        raise FilterError(f"{type(node).__name__} is not supported in filters")

    def _sql(self, build, *_):
        return None if self.table is None else build()

    def _combine(self, joiner, node, depth: int):
        left = self.clause(node.lhs, depth + 1)
        right = self.clause(node.rhs, depth + 1)
        return self._sql(lambda: joiner(left, right))

    # -- properties and values -------------------------------------------------------------------

    def _name(self, node) -> str:
        if isinstance(node, ast.Function) and node.name.lower() == "lower" and len(node.arguments) == 1:
            return self._name(node.arguments[0])
        if not isinstance(node, ast.Attribute):
            raise FilterError(f"the left side of a comparison must be a property, not {_show(node)}")
        name = node.name
        if name in GEOMETRY_NAMES:
            raise FilterError(f"{name} can only be used in spatial predicates (S_INTERSECTS, …)")
        if name not in self.fields:
            raise FilterError(
                f"{name!r} is not a queryable of {self.layer.id}; see /collections/{self.layer.id}/queryables"
            )
        return name

    def _readable(self, name: str):
        """The column as plaintext (decrypted in SQL when sealed at rest, gis.security.encryption)."""
        return self.table.c.id if name == "id" else readable(self.table, self.layer.attr(name))

    def _column_and_value(self, lhs, rhs):
        name = self._name(lhs)
        value = None if rhs is None else self._value(lhs, rhs)
        if self.table is None:
            return None, value
        column = self._readable(name)
        if _casei(lhs):
            column = func.lower(column)
        return column, value

    def _value(self, lhs, node):
        name = self._name(lhs)
        kind = self.fields[name]
        raw = node
        if isinstance(node, ast.Function) and node.name.lower() == "lower" and len(node.arguments) == 1:
            raw = node.arguments[0]
            if not isinstance(raw, str):
                raise FilterError(f"CASEI() takes a string, got {_show(raw)}")
            return raw.lower()
        if isinstance(raw, (ast.Node, values.Geometry, values.Envelope)):
            raise FilterError(f"{name} must be compared with a literal value, not {_show(raw)}")
        return _coerce(name, kind, raw)

    def _like(self, node: ast.Like):
        name = self._name(node.lhs)
        if self.fields[name] is not AttrType.string:
            raise FilterError(f"LIKE needs a string property; {name} is a {self.fields[name].value}")
        if not isinstance(node.pattern, str):
            raise FilterError("LIKE needs a quoted pattern")
        if self.table is None:
            return None
        column = self._readable(name)
        # CQL2's wildcards are SQL's (% and _, backslash escapes), whatever pygeofilter records
        pattern = node.pattern
        if node.nocase or _casei(node.lhs):
            expression = func.lower(column).like(pattern.lower(), escape="\\")
        else:
            # case-sensitive on both backends: the GeoPackage engine sets case_sensitive_like
            expression = column.like(pattern, escape="\\")
        return not_(expression) if node.not_ else expression

    # -- geometry ---------------------------------------------------------------------------------

    def _spatial(self, node: ast.SpatialComparisonPredicate):
        sides = [node.lhs, node.rhs]
        is_geom = [isinstance(s, ast.Attribute) and s.name in GEOMETRY_NAMES for s in sides]
        if sum(is_geom) != 1:
            raise FilterError("a spatial predicate compares the geometry property with one geometry literal")
        literal_side = sides[1] if is_geom[0] else sides[0]
        shape = _literal_geometry(literal_side)
        if self.table is None:
            return None
        function = _SPATIAL[node.op]
        if not is_geom[0]:  # literal first: CONTAINS(lit, geom) is WITHIN(geom, lit) and so on
            function = {"ST_Contains": "ST_Within", "ST_Within": "ST_Contains"}.get(function, function)
        other = func.ST_GeomFromText(literal(shape.wkt), 4490)
        return getattr(func, function)(self.table.c.geom, other, type_=Boolean())


def _casei(node) -> bool:
    return isinstance(node, ast.Function) and node.name.lower() == "lower"


def _coerce(name: str, kind: AttrType, value):
    if kind is AttrType.string:
        if not isinstance(value, str):
            raise FilterError(f"{name} is a string: compare it with a quoted string, not {value!r}")
        return value
    if kind is AttrType.boolean:
        if not isinstance(value, bool):
            raise FilterError(f"{name} is a boolean: compare it with true or false")
        return value
    if kind in (AttrType.integer, AttrType.number):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FilterError(f"{name} is a {kind.value}: compare it with a number, not {value!r}")
        if kind is AttrType.integer and abs(value) > 2**62:
            raise FilterError(f"{name}: {value} is out of range")
        return value
    if kind is AttrType.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise FilterError(f"{name} is a date: compare it with DATE('YYYY-MM-DD')")
    if kind is AttrType.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            except ValueError:
                pass
        raise FilterError(f"{name} is a timestamp: compare it with TIMESTAMP('YYYY-MM-DDTHH:MM:SSZ')")
    raise FilterError(f"{name} cannot be filtered")


def _literal_geometry(node) -> shapely.Geometry:
    if isinstance(node, ast.Function) and node.name.lower() == "bbox":
        args = node.arguments
        if len(args) not in (4, 6) or not all(isinstance(a, (int, float)) for a in args):
            raise FilterError("BBOX takes 4 (or 6) numbers: minx, miny, maxx, maxy")
        lo, hi = (args[0], args[1]), (args[-3 if len(args) == 6 else 2], args[-2 if len(args) == 6 else 3])
        if lo[0] > hi[0] or lo[1] > hi[1]:
            raise FilterError("BBOX lower corner exceeds its upper corner")
        return shapely.box(lo[0], lo[1], hi[0], hi[1])
    if isinstance(node, values.Envelope):
        return shapely.box(min(node.x1, node.x2), min(node.y1, node.y2), max(node.x1, node.x2), max(node.y1, node.y2))
    if not isinstance(node, values.Geometry):
        raise FilterError(f"expected a geometry literal (WKT or GeoJSON), got {_show(node)}")
    try:
        shape = shapely.geometry.shape(node.geometry)
    except Exception as err:
        raise FilterError(f"invalid geometry literal: {err}") from None
    crs = node.geometry.get("crs", {}).get("properties", {}).get("name", "")
    if crs.endswith("EPSG::4490") or crs.endswith("EPSG::4326"):
        # pygeoapi moved it into the storage CRS in authority order: back to lon/lat
        shape = shapely.transform(shape, lambda c: c[:, ::-1])
    if shape.is_empty or not shapely.is_valid(shape):
        raise FilterError(f"invalid geometry literal: {shapely.is_valid_reason(shape)}")
    return shape


def _show(node) -> str:
    text = repr(node)
    return text if len(text) < 80 else text[:77] + "..."
