"""SQLAlchemy tables derived from the layer catalog, for either backend.

Every layer table has `id` (integer primary key), one column per attribute, `geom`
(CGCS2000, EPSG:4490, x = longitude, y = latitude), `h3` (see gis.hexagons) and `source_id`,
the row's key in the system it was imported from (`onemap load` upserts on it; never
published). `onemap_layers` keeps, per layer, the data
version that every write bumps (tile URLs and caches key on it) and the exact feature count.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from gis.catalog import AttrType, Layer

STORAGE_SRID = 4490
SOURCE_ID = "source_id"
# /stats groups whole layers by these codes (gis.stats.aggregate): with a B-tree on each, PostgreSQL
# answers a city-wide GROUP BY from the index alone (once VACUUM has marked the pages all-visible)
# instead of reading every wide row; SQLite uses it as a covering index the same way
AREA_COLUMNS = ("grid", "street")


class GpkgDateTime(TypeDecorator):
    """GeoPackage DATETIME: ISO 8601 text in UTC with a 'Z', as the GeoPackage spec asks."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(DateTimeText())

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, str):
            return value
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class DateTimeText(Text):
    __visit_name__ = "DATETIME"


class GpkgDate(TypeDecorator):
    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(DateText())

    def process_bind_param(self, value, dialect):
        return value if value is None or isinstance(value, str) else value.isoformat()

    def process_result_value(self, value, dialect):
        return None if value is None else dt.date.fromisoformat(value)


class DateText(Text):
    __visit_name__ = "DATE"


class GpkgGeometry(LargeBinary):
    """A GeoPackage geometry blob column; its declared type is the geometry type name."""

    def __init__(self, geometry_type: str):
        super().__init__()
        self.geometry_type = geometry_type.upper()


def _column_type(kind: AttrType, postgis: bool):
    if kind is AttrType.string:
        return Text()
    if kind is AttrType.integer:
        return BigInteger() if postgis else Integer()
    if kind is AttrType.number:
        return Float(precision=53)
    if kind is AttrType.boolean:
        return Boolean()
    if kind is AttrType.date:
        return Date() if postgis else GpkgDate()
    if kind is AttrType.datetime:
        return DateTime(timezone=True) if postgis else GpkgDateTime()
    raise AssertionError(kind)


def layer_table(layer: Layer, metadata: MetaData, postgis: bool) -> Table:
    id_type = BigInteger() if postgis else Integer()  # INTEGER PRIMARY KEY is the SQLite rowid
    geometry = (
        Geometry(layer.geometry.value.upper(), srid=STORAGE_SRID, spatial_index=False)
        if postgis
        else GpkgGeometry(layer.geometry.value)
    )
    return Table(
        layer.id,
        metadata,
        Column("id", id_type, primary_key=True, autoincrement=False),
        *(
            Column(a.name, _column_type(a.type, postgis), nullable=not a.required, comment=a.description)
            for a in layer.attributes
        ),
        Column("geom", geometry, nullable=False),
        # the feature's H3 cell at gis.hexagons.FINEST_RES, written with the feature (aggregates)
        Column("h3", BigInteger() if postgis else Integer(), index=True),
        # the row's key in the source it was imported from; unique, so a re-run import upserts
        Column(SOURCE_ID, Text, nullable=True),
        Index(f"{layer.id}_{SOURCE_ID}", SOURCE_ID, unique=True),
        comment=layer.description,
    )


def create_area_indexes(conn, table: Table, qualified: str) -> None:
    """The area-code indexes of a layer table (see AREA_COLUMNS); idempotent, both backends.

    Built after a bulk load (Backend.index_layer) and by a migration for stores built before."""
    for column in AREA_COLUMNS:
        if column in table.c:
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "{table.name}_{column}" ON {qualified} ("{column}")')


def meta_table(metadata: MetaData) -> Table:
    return Table(
        "onemap_layers",
        metadata,
        Column("layer", String(63), primary_key=True),
        Column("version", BigInteger, nullable=False, default=1),
        Column("feature_count", BigInteger, nullable=False, default=0),
        Column("minx", Float(precision=53)),
        Column("miny", Float(precision=53)),
        Column("maxx", Float(precision=53)),
        Column("maxy", Float(precision=53)),
        Column("updated_at", Text, nullable=False),
    )
