"""What differs between PostGIS and the GeoPackage store, in one place.

Both backends keep geometry in EPSG:4490 and hand it out as WKB; everything else (queries,
CRS transforms, GeoJSON) is shared code above this module. The SQL each backend needs for
geometry lives here and nowhere else.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import shapely
from sqlalchemy import Connection, ColumnElement, Table, bindparam, func, literal_column, text
from sqlalchemy.ext.compiler import compiles

from gis.storage.tables import STORAGE_SRID, GpkgGeometry, create_area_indexes


@compiles(GpkgGeometry, "sqlite")
def _gpkg_geometry_ddl(element: GpkgGeometry, compiler, **kw) -> str:
    return element.geometry_type


class Backend(Protocol):
    name: str
    postgis: bool

    def prepare(self, conn: Connection) -> None:
        """Create whatever the store needs before any layer table (extensions, base tables)."""

    def register_layer(self, conn: Connection, table: Table, geometry_type: str, title: str) -> None:
        """Record a new layer table in the store's own catalog, if it has one."""

    def index_layer(self, conn: Connection, table: Table) -> None:
        """Build the spatial index (after a bulk load: cheaper than maintaining it row by row)."""

    def drop_layer(self, conn: Connection, table: Table) -> None: ...

    def settle(self, engine, table: Table) -> None:
        """After a bulk load has committed: leave the table as fast to read as a long-lived one."""

    def geom_values(self, geoms: np.ndarray) -> list:
        """Geometries (shapely, EPSG:4490) as the values the geom column stores."""

    def as_wkb(self, column: ColumnElement) -> ColumnElement: ...

    def from_wkb(self, param: ColumnElement) -> ColumnElement:
        """A geometry value, for comparisons in SQL, from a WKB parameter in EPSG:4490."""

    def bbox_clause(self, table: Table, bbox: tuple[float, float, float, float]) -> ColumnElement:
        """Rows whose geometry's envelope meets the bbox (minx, miny, maxx, maxy; lon/lat)."""

    def spatial_predicate(self, name: str, column: ColumnElement, other: ColumnElement) -> ColumnElement:
        """`name` is an OGC predicate: intersects, disjoint, contains, within, touches, crosses, overlaps, equals."""


class PostGIS:
    name = "postgis"
    postgis = True

    def __init__(self, schema: str):
        self.schema = schema

    def prepare(self, conn: Connection) -> None:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    def register_layer(self, conn: Connection, table: Table, geometry_type: str, title: str) -> None:
        return None

    def index_layer(self, conn: Connection, table: Table) -> None:
        qualified = f'"{self.schema}"."{table.name}"'
        conn.execute(text(f'CREATE INDEX IF NOT EXISTS "{table.name}_geom_gist" ON {qualified} USING gist (geom)'))
        # WebMercator tiles cut this stored copy, so ST_AsMVT never transforms per request (tiles/).
        # Not in the SQLAlchemy Table: feature queries never see it, and the database fills it on write.
        conn.execute(
            text(
                f"ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS geom_3857 geometry(Geometry, 3857)"
                " GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
            )
        )
        conn.execute(
            text(f'CREATE INDEX IF NOT EXISTS "{table.name}_geom_3857_gist" ON {qualified} USING gist (geom_3857)')
        )
        create_area_indexes(conn, table, qualified)
        conn.execute(text(f"ANALYZE {qualified}"))

    def settle(self, engine, table: Table) -> None:
        # VACUUM sets the visibility map, without which an index-only scan (/stats by grid, street)
        # still visits every heap page; autovacuum may be off or minutes away. Not in a transaction.
        qualified = f'"{self.schema}"."{table.name}"'
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("SET statement_timeout = 0")  # minutes on a big table is normal
            try:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {qualified}")
            finally:
                conn.exec_driver_sql("RESET statement_timeout")

    def drop_layer(self, conn: Connection, table: Table) -> None:
        table.drop(conn, checkfirst=True)

    def geom_values(self, geoms: np.ndarray) -> list:
        with_srid = shapely.set_srid(geoms, STORAGE_SRID)
        # hex EWKB for COPY's text format, made by Python from GEOS's binary WKB: GEOS's own hex
        # writer takes 2.5-3x as long (200,000 points 0.26 s against 0.10 s; PostGIS reads either case)
        return list(map(bytes.hex, shapely.to_wkb(with_srid, include_srid=True)))

    def as_wkb(self, column: ColumnElement) -> ColumnElement:
        return func.ST_AsBinary(column, type_=None)

    def from_wkb(self, param: ColumnElement) -> ColumnElement:
        return func.ST_GeomFromWKB(param, STORAGE_SRID)

    def bbox_clause(self, table: Table, bbox: tuple[float, float, float, float]) -> ColumnElement:
        minx, miny, maxx, maxy = bbox
        envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, STORAGE_SRID)
        return table.c.geom.op("&&")(envelope)

    def spatial_predicate(self, name: str, column: ColumnElement, other: ColumnElement) -> ColumnElement:
        return getattr(func, f"ST_{name.capitalize()}")(column, other)


class GeoPackage:
    """SpatiaLite over a GeoPackage file: GPB blobs, an R*Tree per layer, amphibious functions."""

    name = "geopackage"
    postgis = False

    def prepare(self, conn: Connection) -> None:
        exists = conn.execute(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'gpkg_contents'")
        ).scalar()
        if not exists:
            conn.execute(text("SELECT gpkgCreateBaseTables()"))
            conn.execute(text("PRAGMA application_id = 1196444487"))  # 'GPKG'
            conn.execute(text("PRAGMA user_version = 10300"))
        has_srs = conn.execute(
            text("SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id = :s"), {"s": STORAGE_SRID}
        ).scalar()
        if not has_srs:
            conn.execute(text("SELECT gpkgInsertEpsgSRID(:s)"), {"s": STORAGE_SRID})

    def register_layer(self, conn: Connection, table: Table, geometry_type: str, title: str) -> None:
        conn.execute(
            text(
                "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, srs_id)"
                " VALUES (:t, 'features', :t, :d, :s)"
            ),
            {"t": table.name, "d": title, "s": STORAGE_SRID},
        )
        conn.execute(
            text(
                "INSERT OR REPLACE INTO gpkg_geometry_columns"
                " (table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (:t, 'geom', :g, :s, 0, 0)"
            ),
            {"t": table.name, "g": geometry_type.upper(), "s": STORAGE_SRID},
        )

    def index_layer(self, conn: Connection, table: Table) -> None:
        rtree = f"rtree_{table.name}_geom"
        exists = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = :n"), {"n": rtree}).scalar()
        if not exists:
            conn.execute(text("SELECT gpkgAddSpatialIndex(:t, 'geom')"), {"t": table.name})
        # gpkgAddSpatialIndex only installs triggers: fill the tree with what is already there.
        conn.execute(text(f'DELETE FROM "{rtree}"'))
        conn.execute(
            text(
                f'INSERT INTO "{rtree}" SELECT id, ST_MinX(geom), ST_MaxX(geom), ST_MinY(geom), ST_MaxY(geom)'
                f' FROM "{table.name}"'
            )
        )
        create_area_indexes(conn, table, f'"{table.name}"')
        conn.execute(text(f'ANALYZE "{table.name}"'))

    def settle(self, engine, table: Table) -> None:
        return None  # SQLite has no visibility map; index_layer's ANALYZE is all its planner needs

    def drop_layer(self, conn: Connection, table: Table) -> None:
        rtree = f"rtree_{table.name}_geom"
        for trigger in conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"), {"t": table.name}
        ).scalars().all():
            conn.execute(text(f'DROP TRIGGER IF EXISTS "{trigger}"'))
        conn.execute(text(f'DROP TABLE IF EXISTS "{rtree}"'))
        conn.execute(text("DELETE FROM gpkg_extensions WHERE table_name = :t"), {"t": table.name})
        conn.execute(text("DELETE FROM gpkg_geometry_columns WHERE table_name = :t"), {"t": table.name})
        conn.execute(text("DELETE FROM gpkg_contents WHERE table_name = :t"), {"t": table.name})
        table.drop(conn, checkfirst=True)

    def geom_values(self, geoms: np.ndarray) -> list:
        return encode_gpb(geoms)

    def as_wkb(self, column: ColumnElement) -> ColumnElement:
        return func.ST_AsBinary(column, type_=None)

    def from_wkb(self, param: ColumnElement) -> ColumnElement:
        return func.ST_GeomFromWKB(param, STORAGE_SRID)

    def bbox_clause(self, table: Table, bbox: tuple[float, float, float, float]) -> ColumnElement:
        minx, miny, maxx, maxy = bbox
        rtree = f'"rtree_{table.name}_geom"'
        return table.c.id.in_(
            text(
                f"SELECT id FROM {rtree} WHERE minx <= :_bb_maxx AND maxx >= :_bb_minx"
                " AND miny <= :_bb_maxy AND maxy >= :_bb_miny"
            ).bindparams(
                bindparam("_bb_minx", minx),
                bindparam("_bb_miny", miny),
                bindparam("_bb_maxx", maxx),
                bindparam("_bb_maxy", maxy),
            ).columns(literal_column("id"))
        )

    def spatial_predicate(self, name: str, column: ColumnElement, other: ColumnElement) -> ColumnElement:
        return getattr(func, f"ST_{name.capitalize()}")(column, other)


def encode_gpb(geoms: np.ndarray) -> list[bytes]:
    """GeoPackage binary: 'GP', version 0, flags, srs_id, xy envelope, then little-endian WKB.

    Done in numpy/shapely rather than AsGPB() in SQL so bulk loads stay one executemany.
    """
    wkbs = shapely.to_wkb(geoms, byte_order=1)
    bounds = shapely.bounds(geoms)  # minx, miny, maxx, maxy
    envelope = bounds[:, [0, 2, 1, 3]].astype("<f8")  # GPKG order: minx, maxx, miny, maxy
    header = b"GP\x00\x03" + np.int32(STORAGE_SRID).astype("<i4").tobytes()
    return [header + env.tobytes() + wkb for env, wkb in zip(envelope, wkbs)]


def backend_for(postgis: bool, schema: str) -> Backend:
    return PostGIS(schema) if postgis else GeoPackage()
