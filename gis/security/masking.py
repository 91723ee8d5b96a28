"""Desensitization: one masking rule per sensitivity class, as SQL that both backends run.

The rules are SQL expressions, not Python, so that every output path masks the same way and the
original value never leaves the database for a masked reader: the Features query (GeoJSON, HTML,
CSV and every other pygeoapi format read the provider's rows), the GeoPackage tile renderer
(a SQLAlchemy select) and the PostGIS tile renderer (ST_AsMVT over this same SQL, compiled) all
select `masked(column, class)` instead of the column.

  person_name  first character kept, the rest one '*' each      张三丰 -> 张**
  national_id  first 6 and last 4 kept, the middle starred       370283********517X
  phone        first 3 and last 4 kept, 4 stars between          138****1234
  address      cut after the building ("…号楼", else the first "…号"); an address that is no
               finer than a building (a village house) loses its last 3 characters instead
Values too short to keep anything safely (a national ID under 11 characters, a phone under 8)
become all stars, so a masked value is never the original.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement, String, Text, case, func, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from gis.catalog import Sensitivity

STARS = "*" * 64


class _position(GenericFunction):
    """1-based character position of a substring, 0 when absent: strpos / instr."""

    type = String()
    inherit_cache = True
    name = "onemap_position"


@compiles(_position, "postgresql")
def _position_pg(element, compiler, **kw):
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(_position, "sqlite")
def _position_sqlite(element, compiler, **kw):
    return f"instr({compiler.process(element.clauses, **kw)})"


def _stars(n: ColumnElement) -> ColumnElement:
    return func.substr(literal(STARS, Text), 1, n)


def person_name(column: ColumnElement) -> ColumnElement:
    c = column
    n = func.length(c)
    return case(
        (n <= 1, literal("*", Text)),
        else_=func.substr(c, 1, 1).concat(_stars(n - 1)),
    )


def national_id(column: ColumnElement) -> ColumnElement:
    c = column
    n = func.length(c)
    return case(
        (n < 11, _stars(n)),
        else_=func.substr(c, 1, 6).concat(_stars(n - 10)).concat(func.substr(c, n - 3, 4)),
    )


def phone(column: ColumnElement) -> ColumnElement:
    c = column
    n = func.length(c)
    return case(
        (n < 8, _stars(n)),
        else_=func.substr(c, 1, 3).concat(literal("****", Text)).concat(func.substr(c, n - 3, 4)),
    )


def address(column: ColumnElement) -> ColumnElement:
    c = column
    building = _position(c, literal("号楼", Text))
    number = _position(c, literal("号", Text))
    n = func.length(c)
    cut = case((building > 0, building + 1), (number > 0, number), else_=0)
    return case(
        # already no finer than a building (a village house): its number goes too
        ((cut == 0) | (cut >= n), case((n > 3, func.substr(c, 1, n - 3).concat(literal("***", Text))), else_=_stars(n))),
        else_=func.substr(c, 1, cut),
    )


MASKS: dict[Sensitivity, Callable[[ColumnElement], ColumnElement]] = {
    Sensitivity.person_name: person_name,
    Sensitivity.national_id: national_id,
    Sensitivity.phone: phone,
    Sensitivity.address: address,
}


def masked(column: ColumnElement, sensitivity: Sensitivity) -> ColumnElement:
    """The masked value of `column` for its class; NULL stays NULL."""
    try:
        rule = MASKS[sensitivity]
    except KeyError:
        raise ValueError(f"no masking rule for sensitivity {sensitivity!r}") from None
    return case((column.is_(None), literal(None, Text)), else_=rule(column))


def masked_sql_postgres(column_sql: str, sensitivity: Sensitivity) -> str:
    """The same rule as PostgreSQL text over a column reference (the tile renderer's `t."x"`)."""
    from sqlalchemy.dialects import postgresql

    expression = masked(literal_column(column_sql, Text), sensitivity)
    return str(expression.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
