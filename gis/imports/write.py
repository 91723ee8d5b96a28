"""Checked rows into a layer table, in one transaction, as an upsert keyed by `source_id`.

The rows first land in a temporary staging table (COPY on PostGIS, one executemany on the
GeoPackage), then one INSERT ... ON CONFLICT moves them in: new source ids get new feature
ids, known ones keep theirs and are rewritten only when something differs, so re-running an
import changes nothing — not even the layer's data version, which the layer's triggers
(gis.edit.triggers) move only when a row is written. A failure or a killed process
before COMMIT leaves the table as it was.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass

import shapely
from sqlalchemy import Connection, select, text

from gis import hexagons
from gis.catalog import AttrType, Layer
from gis.edit import triggers
from gis.imports.validate import Checked
from gis.storage.store import Store
from gis.storage.tables import SOURCE_ID

STAGE = "onemap_import_stage"
CHUNK = 20_000


@dataclass
class Written:
    inserted: int
    updated: int
    unchanged: int
    bbox: tuple[float, float, float, float] | None  # lon/lat of everything touched, old and new
    version: int  # the layer's data version after the import


def upsert(store: Store, layer: Layer, rows: Checked, progress: Callable[[int], None] | None = None) -> Written:
    table = store.tables[layer.id]
    names = [a.name for a in layer.attributes if a.name in rows.columns]
    with store.engine.connect().execution_options(onemap_write=True) as conn:
        with conn.begin():
            if store.postgis:
                # one importer per layer at a time; readers are never blocked
                conn.execute(text(f'LOCK TABLE "{store.schema}"."{layer.id}" IN SHARE ROW EXCLUSIVE MODE'))
            # the layer's triggers move its data version, count and extent (and NOTIFY listeners)
            triggers.install(conn, store.postgis, store.schema, layer.id)
            ids, inserted, first_new = _assign_ids(conn, table, rows.source_ids)
            _stage(store, conn, layer, names, ids, rows, progress)
            old_bbox = _touched_extent(store, conn, layer.id)
            changed = _merge(store, conn, layer.id, names, first_new)
            conn.execute(text(f"DROP TABLE {_stage_name(store)}"))
            updated = changed - inserted
            version = conn.execute(
                select(store.meta.c.version).where(store.meta.c.layer == layer.id)
            ).scalar_one()
    bbox = _union(old_bbox, tuple(shapely.total_bounds(rows.geoms)) if len(rows) else None) if changed else None
    return Written(inserted, updated, len(rows) - changed, bbox, version)


def _assign_ids(conn: Connection, table, source_ids: list[str]) -> tuple[list[int], int, int]:
    """Known source ids keep their feature id; new ones follow the layer's highest id."""
    known: dict[str, int] = {}
    wanted = list(source_ids)
    for start in range(0, len(wanted), 5_000):
        chunk = wanted[start:start + 5_000]
        known.update(conn.execute(select(table.c[SOURCE_ID], table.c.id).where(table.c[SOURCE_ID].in_(chunk))).all())
    next_id = first_new = (conn.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar() or 0) + 1
    ids = []
    new = 0
    for key in source_ids:
        found = known.get(key)
        if found is None:
            found = next_id
            next_id += 1
            new += 1
        ids.append(found)
    return ids, new, first_new


def _stage_name(store: Store) -> str:
    return f'"{STAGE}"' if store.postgis else f'temp."{STAGE}"'


def _stage(store: Store, conn: Connection, layer: Layer, names, ids, rows: Checked, progress) -> None:
    quoted = ", ".join(f'"{n}"' for n in ["id", SOURCE_ID, *names, "h3", "geom"])
    if store.postgis:
        conn.execute(text(
            f'CREATE TEMP TABLE "{STAGE}" ON COMMIT DROP AS SELECT {quoted} '
            f'FROM "{store.schema}"."{layer.id}" WITH NO DATA'
        ))
    else:
        conn.execute(text(f'DROP TABLE IF EXISTS temp."{STAGE}"'))
        conn.execute(text(f'CREATE TEMP TABLE "{STAGE}" AS SELECT {quoted} FROM "{layer.id}" WHERE 0'))
    types = {a.name: a.type for a in layer.attributes}
    done = 0
    for start in range(0, len(rows), CHUNK):
        end = min(start + CHUNK, len(rows))
        geoms = rows.geoms[start:end]
        columns = [
            ids[start:end],
            rows.source_ids[start:end],
            *(_stored(rows.columns[n][start:end], types[n], store.postgis) for n in names),
            hexagons.cells(geoms),
            store.backend.geom_values(geoms),
        ]
        if store.postgis:
            _copy(conn, quoted, columns)
        else:
            marks = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f'INSERT INTO temp."{STAGE}" ({quoted}) VALUES ({marks})', list(zip(*columns)))
        done = end
        if progress:
            progress(done)


def _stored(values: list, kind: AttrType, postgis: bool) -> list:
    if postgis:
        return values
    # the GeoPackage store keeps dates and times as ISO text (gis.storage.tables.GpkgDateTime)
    if kind is AttrType.datetime:
        return [None if v is None else v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for v in values]
    if kind is AttrType.date:
        return [None if v is None else v.isoformat() for v in values]
    if kind is AttrType.boolean:
        return [None if v is None else int(v) for v in values]
    return values


def _copy(conn: Connection, quoted: str, columns: list) -> None:
    buffer = io.StringIO()
    for row in zip(*columns):
        buffer.write("\t".join(_copy_text(v) for v in row))
        buffer.write("\n")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f'COPY "{STAGE}" ({quoted}) FROM STDIN') as copy:
            copy.write(buffer.getvalue())


def _copy_text(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return repr(value)
    s = str(value)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _touched_extent(store: Store, conn: Connection, layer_id: str):
    """Where the rows about to be rewritten are now: their tiles change too."""
    target = f'"{store.schema}"."{layer_id}"' if store.postgis else f'"{layer_id}"'
    if store.postgis:
        sql = (f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(t.geom)::geometry e "
               f'FROM {target} t JOIN "{STAGE}" s ON s.id = t.id) q')
    else:
        sql = (f"SELECT min(ST_MinX(t.geom)), min(ST_MinY(t.geom)), max(ST_MaxX(t.geom)), max(ST_MaxY(t.geom)) "
               f'FROM {target} t JOIN temp."{STAGE}" s ON s.id = t.id')
    row = conn.execute(text(sql)).one()
    return None if row[0] is None else tuple(float(v) for v in row)


def _merge(store: Store, conn: Connection, layer_id: str, names: list[str], first_new: int) -> int:
    """Rewrite known rows that differ, insert new ones; the count of rows written.

    Two plain statements rather than INSERT ... ON CONFLICT: SQLite lets an upsert's conflict
    rule override the GeoPackage R*Tree triggers' INSERT OR REPLACE, which then fails.
    """
    columns = [SOURCE_ID, *names, "h3", "geom"]
    quoted = ", ".join(f'"{c}"' for c in ["id", *columns])
    target = f'"{store.schema}"."{layer_id}"' if store.postgis else f'"{layer_id}"'
    stage = _stage_name(store)
    sets = ", ".join(f'"{c}" = s."{c}"' for c in columns)
    old = ", ".join(f'{target}."{c}"' for c in columns)
    new = ", ".join(f's."{c}"' for c in columns)
    differs = "IS DISTINCT FROM" if store.postgis else "IS NOT"
    updated = conn.execute(text(
        f"UPDATE {target} SET {sets} FROM {stage} s WHERE {target}.id = s.id AND s.id < :first "
        f"AND ({old}) {differs} ({new})"
    ), {"first": first_new}).rowcount
    inserted = conn.execute(text(
        f"INSERT INTO {target} ({quoted}) SELECT {quoted} FROM {stage} WHERE id >= :first ORDER BY id"
    ), {"first": first_new}).rowcount
    return updated + inserted


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
