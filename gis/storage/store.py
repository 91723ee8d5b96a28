"""The city store: layer tables on either backend, bulk loading, and per-layer metadata.

A `Store` is built once per process from settings and passed down; every reader and writer of
layer data goes through it, so both backends behave the same above this line.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import Engine, MetaData, Table, func, inspect, select, text

from gis import hexagons
from gis.catalog import Catalog, Layer
from gis.edit import triggers
from gis.security.encryption import DataKey, encrypted_names
from gis.settings import Settings
from gis.storage.backends import Backend, backend_for
from gis.storage.engine import open_engine
from gis.storage.tables import layer_table, meta_table


@dataclass
class Batch:
    """Rows for one layer, column-wise: ids, shapely geometries (EPSG:4490, lon/lat), attributes."""

    ids: Sequence[int]
    geoms: np.ndarray
    columns: Mapping[str, Sequence]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class LayerMeta:
    layer: str
    version: int
    feature_count: int
    bbox: tuple[float, float, float, float] | None  # lon/lat, EPSG:4490
    updated_at: str


class Store:
    def __init__(self, settings: Settings, catalog: Catalog, engine: Engine | None = None):
        self.settings = settings
        self.catalog = catalog
        self.postgis = settings.database.is_postgis
        self.schema = settings.database.schema_name if self.postgis else None
        # the key of the sensitive columns: every connection decrypts with it, every writer seals
        self.key = DataKey.load(settings.database)
        self.engine = engine or open_engine(settings.database)
        self.key.attach(self.engine, self.postgis)
        self.backend: Backend = backend_for(self.postgis, settings.database.schema_name)
        self.metadata = MetaData(schema=self.schema)
        self.tables: dict[str, Table] = {
            layer.id: layer_table(layer, self.metadata, self.postgis) for layer in catalog
        }
        self.meta = meta_table(self.metadata)

    @classmethod
    def open(cls, settings: Settings, catalog: Catalog | None = None) -> "Store":
        return cls(settings, catalog or Catalog.load(settings.server.layers_dir))

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------

    def initialise(self) -> None:
        """Create the store's base structures and any missing layer table, then upgrade the
        schema of what was already there (idempotent; gis.storage.migrations)."""
        from gis.storage import migrations

        with self.engine.begin() as conn:
            self.backend.prepare(conn)
            self.meta.create(conn, checkfirst=True)
            existing = set(inspect(conn).get_table_names(schema=self.schema))
            for layer in self.catalog:
                if layer.id not in existing:
                    self._create_layer(conn, layer)
                else:
                    self._add_new_attributes(conn, layer)
            migrations.upgrade(conn, self)
            self.key.verify(conn, self.schema)

    def verify_key(self) -> None:
        """For commands that read without initialising: refuse a store sealed with another key."""
        with self.engine.connect() as conn:
            self.key.verify(conn, self.schema)

    def _add_new_attributes(self, conn, layer: Layer) -> None:
        # An attribute added to a layer file after the store was built becomes an empty column,
        # so an existing store keeps working without a reload.
        table = self.tables[layer.id]
        present = {c["name"] for c in inspect(conn).get_columns(layer.id, schema=self.schema)}
        qualified = f'"{self.schema}"."{layer.id}"' if self.postgis else f'"{layer.id}"'
        for attribute in layer.attributes:
            if attribute.name not in present:
                kind = table.c[attribute.name].type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {qualified} ADD COLUMN "{attribute.name}" {kind}'))

    def _create_layer(self, conn, layer: Layer) -> None:
        table = self.tables[layer.id]
        table.create(conn)
        self.backend.register_layer(conn, table, layer.geometry.value, layer.title)
        self.backend.index_layer(conn, table)
        triggers.install(conn, self.postgis, self.schema, layer.id)
        conn.execute(self.meta.delete().where(self.meta.c.layer == layer.id))
        conn.execute(self.meta.insert().values(layer=layer.id, version=1, feature_count=0, updated_at=_now()))

    def is_built(self) -> bool:
        """True when every layer table exists and holds at least one feature."""
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("onemap_layers", schema=self.schema):
                    return False
                counts = dict(conn.execute(select(self.meta.c.layer, self.meta.c.feature_count)).all())
        except Exception:
            return False
        return all(counts.get(layer.id, 0) > 0 for layer in self.catalog)

    # -- bulk loading ------------------------------------------------------------------------

    @contextmanager
    def replacing(self, layer_id: str) -> Iterator["_Loader"]:
        """Replace a layer's contents in one transaction: all batches land, or none do."""
        layer = self.catalog[layer_id]
        table = self.tables[layer_id]
        with self.engine.begin() as conn:
            self.backend.prepare(conn)
            self.meta.create(conn, checkfirst=True)
            self.backend.drop_layer(conn, table)
            table.create(conn)
            self.backend.register_layer(conn, table, layer.geometry.value, layer.title)
            loader = _Loader(self, conn, layer, table)
            yield loader
            # the new table's triggers, so writes by other systems keep reaching the app; after the
            # load, so a GeoPackage's row triggers do not run once per loaded row
            triggers.install(conn, self.postgis, self.schema, layer_id)
            self.backend.index_layer(conn, table)
            self._refresh_meta(conn, layer_id, bump=True)

    def _refresh_meta(self, conn, layer_id: str, bump: bool) -> None:
        table = self.tables[layer_id]
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        bbox = self._extent(conn, table) if count else (None, None, None, None)
        current = conn.execute(select(self.meta.c.version).where(self.meta.c.layer == layer_id)).scalar()
        values = dict(feature_count=count, minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3], updated_at=_now())
        if current is None:
            conn.execute(self.meta.insert().values(layer=layer_id, version=1, **values))
        else:
            conn.execute(
                self.meta.update()
                .where(self.meta.c.layer == layer_id)
                .values(version=current + (1 if bump else 0), **values)
            )

    def _extent(self, conn, table: Table) -> tuple[float, float, float, float]:
        if self.postgis:
            row = conn.execute(
                text(
                    f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM '
                    f'(SELECT ST_Extent(geom)::geometry AS e FROM "{self.schema}"."{table.name}") s'
                )
            ).one()
        else:
            row = conn.execute(
                # not the R*Tree: it stores float32 envelopes, a few metres off
                text(
                    f'SELECT min(ST_MinX(geom)), min(ST_MinY(geom)), max(ST_MaxX(geom)), max(ST_MaxY(geom))'
                    f' FROM "{table.name}"'
                )
            ).one()
        return tuple(float(v) for v in row)

    # -- metadata ------------------------------------------------------------------------------

    def layer_meta(self, layer_id: str) -> LayerMeta:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.meta).where(self.meta.c.layer == layer_id)).mappings().one_or_none()
        if row is None:
            return LayerMeta(layer_id, 0, 0, None, "")
        bbox = None if row["minx"] is None else (row["minx"], row["miny"], row["maxx"], row["maxy"])
        return LayerMeta(layer_id, row["version"], row["feature_count"], bbox, row["updated_at"])

    def all_meta(self) -> dict[str, LayerMeta]:
        return {layer.id: self.layer_meta(layer.id) for layer in self.catalog}


class _Loader:
    def __init__(self, store: Store, conn, layer: Layer, table: Table):
        self.store, self.conn, self.layer, self.table = store, conn, layer, table
        self.rows = 0

    def append(self, batch: Batch) -> None:
        if not len(batch):
            return
        unknown = set(batch.columns) - {a.name for a in self.layer.attributes}
        if unknown:
            raise ValueError(f"{self.layer.id}: no such attributes {sorted(unknown)}")
        names = [a.name for a in self.layer.attributes if a.name in batch.columns]
        shapes = np.asarray(batch.geoms)
        geoms = self.store.backend.geom_values(shapes)
        names.append("h3")
        sealed = encrypted_names(self.layer)
        values = [self.store.key.seal_all(batch.columns[n]) if n in sealed else batch.columns[n] for n in names[:-1]]
        columns = [batch.ids, *values, hexagons.cells(shapes), geoms]
        if self.store.postgis:
            self._copy(names, columns)
        else:
            self._executemany(names, columns)
        self.rows += len(batch)

    def _executemany(self, names: list[str], columns: list[Sequence]) -> None:
        types = [self.table.c[n].type for n in names]
        binders = [t.bind_processor(self.conn.dialect) for t in types]
        converted = [
            col if bind is None else [bind(v) for v in col]
            for col, bind in zip(columns[1:-1], binders)
        ]
        rows = list(zip((int(i) for i in columns[0]), *(_plain(c) for c in converted), columns[-1]))
        placeholders = ", ".join("?" for _ in range(len(names) + 2))
        quoted = ", ".join(f'"{n}"' for n in ["id", *names, "geom"])
        self.conn.exec_driver_sql(f'INSERT INTO "{self.table.name}" ({quoted}) VALUES ({placeholders})', rows)

    def _copy(self, names: list[str], columns: list[Sequence]) -> None:
        quoted = ", ".join(f'"{n}"' for n in ["id", *names, "geom"])
        raw = self.conn.connection.driver_connection
        buffer = io.StringIO()
        for row in zip(*(_plain(c) for c in columns)):
            buffer.write("\t".join(_copy_text(v) for v in row))
            buffer.write("\n")
        with raw.cursor() as cur:
            with cur.copy(f'COPY "{self.store.schema}"."{self.table.name}" ({quoted}) FROM STDIN') as copy:
                copy.write(buffer.getvalue())


def _plain(column: Sequence) -> Sequence:
    """numpy arrays to Python scalars, so drivers see int/float/str, not numpy types."""
    return column.tolist() if isinstance(column, np.ndarray) else column


def _copy_text(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return r"\N"
    s = str(value)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shapes(wkbs: Sequence[bytes]) -> np.ndarray:
    return shapely.from_wkb(list(wkbs))
