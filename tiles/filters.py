"""The `filter` parameter of collection tiles, as a SQLAlchemy where-clause over the layer's table.

When gis.features.cql exists (the Features engineer's CQL2 module) it does the parsing, validation
and translation, so tiles accept exactly what /items accepts. Until then a fallback understands the
common case, conjunctions of property equalities in CQL2 text (`status = 'offline' AND grid = 'G1'`),
over the layer's public attributes only. Either way a bad filter raises `FilterError` (HTTP 400).
"""

from __future__ import annotations

import importlib
import importlib.util
import re

from sqlalchemy import ColumnElement, Table, and_

from gis.catalog import AttrType, Layer

LANGS = ("cql2-text", "cql2-json")


class FilterError(ValueError):
    pass


def _cql_module():
    if importlib.util.find_spec("gis.features") is None or importlib.util.find_spec("gis.features.cql") is None:
        return None
    return importlib.import_module("gis.features.cql")


def _translator(module):
    for name in ("to_sqlalchemy", "to_clause", "translate", "to_where", "where_clause"):
        if callable(getattr(module, name, None)):
            return getattr(module, name)
    return None


def where_clause(layer: Layer, table: Table, text: str, lang: str | None) -> ColumnElement:
    lang = lang or "cql2-text"
    if lang not in LANGS:
        raise FilterError(f"filter-lang {lang!r} is not supported; use one of {', '.join(LANGS)}")
    module = _cql_module()
    translate = _translator(module) if module is not None else None
    if translate is not None:
        try:
            ast = module.parse_filter(text, lang)
            module.validate(ast, layer)
            return translate(ast, table)
        except FilterError:
            raise
        except Exception as err:  # the CQL module's own errors name the problem; pass them on
            raise FilterError(str(err)) from err
    if lang != "cql2-text":
        raise FilterError("only filter-lang=cql2-text is supported for tiles until CQL2 JSON support lands")
    return _equalities(layer, table, text)


_TERM = re.compile(
    r"""^\s*"?(?P<name>[a-z][a-z0-9_]*)"?\s*=\s*(?:'(?P<str>(?:[^']|'')*)'|(?P<num>-?\d+(?:\.\d+)?)|(?P<bool>true|false))\s*$""",
    re.IGNORECASE,
)


def _equalities(layer: Layer, table: Table, text: str) -> ColumnElement:
    public = {a.name: a for a in layer.public_attributes}
    clauses = []
    for term in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _TERM.match(term)
        if not match:
            raise FilterError(
                f"cannot read {term.strip()!r}: tile filters take property = value terms joined by AND "
                "(e.g. status = 'offline')"
            )
        name = match["name"]
        if name not in public:
            raise FilterError(f"{name!r} is not a queryable property of {layer.id}; use one of {', '.join(public)}")
        attribute = public[name]
        clauses.append(table.c[name] == _typed(attribute.type, name, match))
    return and_(*clauses)


def _typed(kind: AttrType, name: str, match: re.Match):
    if kind in (AttrType.integer, AttrType.number):
        if match["num"] is None:
            raise FilterError(f"{name} is a {kind.value}: compare it with a number")
        return int(match["num"]) if kind is AttrType.integer and "." not in match["num"] else float(match["num"])
    if kind is AttrType.boolean:
        if match["bool"] is None:
            raise FilterError(f"{name} is a boolean: compare it with true or false")
        return match["bool"].lower() == "true"
    if match["str"] is None:
        raise FilterError(f"{name} is a {kind.value}: compare it with a quoted string")
    return match["str"].replace("''", "'")
