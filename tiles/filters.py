"""The `filter` parameter of collection tiles, as a SQLAlchemy where-clause over the layer's table.

One CQL2 implementation serves the whole service: `gis.features.cql` parses (pygeofilter, as
pygeoapi does), checks the terms against the layer's queryables and translates them, so tiles
accept and refuse exactly what /collections/{id}/items accepts. Its `FilterError` is re-exported
here; tiles.api answers it with a 400 problem naming the problem.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table

from gis.catalog import Layer
from gis.features import cql
from gis.features.cql import FilterError

__all__ = ["FilterError", "where_clause"]


def where_clause(layer: Layer, table: Table, text: str, lang: str | None) -> ColumnElement:
    """Parse, check and translate `text` (cql2-text when `lang` is None); FilterError when unusable."""
    node = cql.parse_filter(text, lang)
    cql.validate(node, layer)
    return cql.to_sqlalchemy(node, layer, table)
