"""Checked rows into a layer table, in one transaction, as an upsert keyed by `source_id`.

Rows whose source id is new get the next feature ids and go straight into the layer table
(COPY on PostGIS, one executemany per chunk on the GeoPackage). Rows already there keep their
feature id: they land in a temporary staging table and one UPDATE rewrites those that differ,
so re-running an import changes nothing — not even the layer's data version, which the layer's triggers
(gis.edit.triggers) move only when a row is written. A failure or a killed process
before COMMIT leaves the table as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import shapely
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, select, text

from gis import hexagons
from gis.catalog import AttrType, Layer
from gis.imports.validate import Checked
from gis.security.encryption import encrypted_names
from gis.storage.store import Store
from gis.storage.tables import SOURCE_ID

STAGE = "onemap_import_stage"
# rows per COPY chunk: the server starts on the first chunk once it is formatted and ends with
# the last, so smaller chunks shorten both waits (20,000 -> 5,000: ~0.1 s of 200,000 points)
CHUNK = 5_000
BULK_ROWS = 10_000  # new rows from which a load into a small table rebuilds its indexes after


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
    columns = ["id", SOURCE_ID, *names, "h3", "geom"]
    target = f'"{store.schema}"."{layer.id}"' if store.postgis else f'"{layer.id}"'
    with store.engine.connect().execution_options(onemap_write=True) as conn:
        with conn.begin():
            if store.postgis:
                # one importer per layer at a time; readers are never blocked
                conn.execute(text(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE"))
            ids, known = _assign_ids(store, conn, table, rows.source_ids)
            there = set(known.values())
            fresh = [i for i in range(len(rows)) if i not in there]
            done = [0]

            def step(n: int) -> None:
                done[0] += n
                if progress:
                    progress(done[0])

            updated, old_bbox = 0, None
            if known:
                # rows already there: staged, then rewritten only where something differs
                stage = _create_stage(store, conn, layer.id, columns)
                _write(store, conn, stage, columns, layer, ids, rows, sorted(known.values()), step)
                old_bbox = _touched_extent(store, conn, target, stage)
                updated = _update(store, conn, target, stage, columns, encrypted_names(layer))
                conn.execute(text(f"DROP TABLE {stage}"))
            # new rows go straight into the layer table (COPY on PostGIS)
            with _bulk_indexes(store, conn, layer.id, len(fresh)):
                _write(store, conn, target, columns, layer, ids, rows, fresh, step)
            version = conn.execute(
                select(store.meta.c.version).where(store.meta.c.layer == layer.id)
            ).scalar_one()
    changed = updated + len(fresh)
    touched = tuple(shapely.total_bounds(rows.geoms)) if len(rows) else None
    bbox = _union(old_bbox, touched) if changed else None
    return Written(len(fresh), updated, len(rows) - changed, bbox, version)


@contextmanager
def _bulk_indexes(store: Store, conn: Connection, layer_id: str, adding: int):
    """A big load into a small table rebuilds its secondary indexes once, after the COPY.

    Maintaining two GiST and three B-tree indexes row by row costs several times the COPY
    itself; building them afterwards is the way ogr2ogr loads too. The DROP locks the table
    against readers until COMMIT, so it is done only when the load at least doubles the layer
    (a first load, typically), where the wait is shorter than the incremental path would be.
    """
    if not store.postgis or adding < BULK_ROWS:
        yield
        return
    qualified = f'"{store.schema}"."{layer_id}"'
    present = conn.execute(text(f"SELECT count(*) FROM {qualified}")).scalar_one()
    if adding < present:
        yield
        return
    indexes = secondary_indexes(conn, store.schema, layer_id)
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{store.schema}"."{name}"'))
    yield
    conn.execute(text(INDEX_BUILD_MEMORY))
    for _, definition in indexes:
        conn.execute(text(definition))
    conn.execute(text(f"ANALYZE {qualified}"))


# sorted B-tree builds and GiST builds in memory rather than spilling (the default is 64 MB)
INDEX_BUILD_MEMORY = "SET LOCAL maintenance_work_mem = '512MB'"


def secondary_indexes(conn: Connection, schema: str, layer_id: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of each index of a PostGIS layer table that backs no
    constraint: what a bulk load drops and builds again (bench/imports.py times the same)."""
    return [tuple(row) for row in conn.execute(text(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = :s AND i.tablename = :t "
        "AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = CAST(:q AS regclass))"
    ), {"s": schema, "t": layer_id, "q": f'"{schema}"."{layer_id}"'}).all()]


def _assign_ids(store: Store, conn: Connection, table, source_ids: list[str]) -> tuple[list[int], dict[str, int]]:
    """Known source ids keep their feature id; new ones follow the layer's highest id.

    Returns every row's id and {source id: row index} of the rows already in the table.
    """
    highest = conn.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar()
    existing = {} if highest is None else _known(store, conn, table, source_ids)
    next_id = (highest or 0) + 1
    ids: list[int] = []
    known: dict[str, int] = {}
    for index, key in enumerate(source_ids):
        found = existing.get(key)
        if found is None:
            found = next_id
            next_id += 1
        else:
            known[key] = index
        ids.append(found)
    return ids, known


def _known(store: Store, conn: Connection, table, source_ids: list[str]) -> dict[str, int]:
    """{source id: feature id} of this file's rows already in the layer, found through the unique
    index on source_id by the file's own ids in one parameter: a small daily file costs as much
    on a layer of millions as on an empty one (reading every id of the layer did not)."""
    target = f'"{store.schema}"."{table.name}"' if store.postgis else f'"{table.name}"'
    if store.postgis:
        sql, keys = f"SELECT {SOURCE_ID}, id FROM {target} WHERE {SOURCE_ID} = ANY(:keys)", list(source_ids)
    else:
        sql, keys = f"SELECT {SOURCE_ID}, id FROM {target} WHERE {SOURCE_ID} IN (SELECT value FROM json_each(:keys))", json.dumps(source_ids)
    return dict(conn.execute(text(sql), {"keys": keys}).all())


def _create_stage(store: Store, conn: Connection, layer_id: str, columns: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in columns)
    if store.postgis:
        conn.execute(text(
            f'CREATE TEMP TABLE "{STAGE}" ON COMMIT DROP AS SELECT {quoted} '
            f'FROM "{store.schema}"."{layer_id}" WITH NO DATA'
        ))
        return f'"{STAGE}"'
    conn.execute(text(f'DROP TABLE IF EXISTS temp."{STAGE}"'))
    conn.execute(text(f'CREATE TEMP TABLE "{STAGE}" AS SELECT {quoted} FROM "{layer_id}" WHERE 0'))
    return f'temp."{STAGE}"'


def _write(store: Store, conn: Connection, into: str, columns: list[str], layer: Layer, ids, rows: Checked,
           which: list[int], step: Callable[[int], None]) -> None:
    """Rows `which` (indexes into `rows`) into table `into`, in chunks: one COPY streamed chunk
    by chunk (PostgreSQL stores a chunk while the next is prepared), or an executemany each."""
    if not which:
        return
    names = columns[2:-2]
    quoted = ", ".join(f'"{n}"' for n in columns)
    types = {a.name: a.type for a in layer.attributes}
    kinds = [None, AttrType.string, *(types[n] for n in names), None, None]
    sealed = encrypted_names(layer)  # sealed at rest (gis.security.encryption) before they leave the process

    def stored(n: str, part: list[int]) -> list:
        values = _stored(_take(rows.columns[n], part), types[n], store.postgis)
        return store.key.seal_all(values) if n in sealed else values

    def chunks():
        for start in range(0, len(which), CHUNK):
            part = which[start:start + CHUNK]
            geoms = rows.geoms[part]
            yield len(part), [
                _take(ids, part),
                _take(rows.source_ids, part),
                *(stored(n, part) for n in names),
                hexagons.cells(geoms),
                store.backend.geom_values(geoms),
            ]

    if store.postgis:
        raw = conn.connection.driver_connection
        # a writer thread sends each chunk while this one prepares the next: the server stores
        # rows (parsing, the generated WebMercator column) in parallel with the Python side
        with raw.cursor() as cur, cur.copy(f"COPY {into} ({quoted}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy:
            for count, values in chunks():
                copy.write(_copy_text(values, kinds))
                step(count)
        return
    marks = ", ".join("?" for _ in columns)
    for count, values in chunks():
        conn.exec_driver_sql(f"INSERT INTO {into} ({quoted}) VALUES ({marks})", list(zip(*values)))
        step(count)


def _take(values: list, part: list[int]) -> list:
    """values[i] for i in part (ascending): a slice when part is a run, as in a first load."""
    if part and part[-1] - part[0] == len(part) - 1:
        return values[part[0]:part[-1] + 1]
    return [values[i] for i in part]


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


def _copy_text(columns: list[list], kinds: list) -> str:
    texts = [_copy_column(values, kind) for values, kind in zip(columns, kinds)]
    return "\n".join(map("\t".join, zip(*texts))) + "\n"


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_column(values: list, kind) -> list[str]:
    """One column as COPY text, converted a column at a time (the per-value path is the slow one)."""
    if kind is None:  # ids, H3 cells, hex EWKB: never null, never in need of escapes
        return list(map(str, values))
    if kind is AttrType.string:
        present = [v for v in values if v is not None]
        joined = "".join(present)
        if not any(c in joined for c in "\\\t\n\r"):  # the usual case: nothing to escape
            return values if len(present) == len(values) else [r"\N" if v is None else v for v in values]
        return [r"\N" if v is None else v.translate(_ESCAPES) for v in values]
    if kind is AttrType.boolean:
        return [r"\N" if v is None else ("t" if v else "f") for v in values]
    if kind is AttrType.number:
        return [r"\N" if v is None else repr(float(v)) for v in values]
    if kind in (AttrType.date, AttrType.datetime):
        return [r"\N" if v is None else v.isoformat() for v in values]
    return [r"\N" if v is None else str(v) for v in values]


def _touched_extent(store: Store, conn: Connection, target: str, stage: str):
    """Where the rows about to be rewritten are now: their tiles change too."""
    if store.postgis:
        sql = (f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(t.geom)::geometry e "
               f"FROM {target} t JOIN {stage} s ON s.id = t.id) q")
    else:
        sql = (f"SELECT min(ST_MinX(t.geom)), min(ST_MinY(t.geom)), max(ST_MaxX(t.geom)), max(ST_MaxY(t.geom)) "
               f"FROM {target} t JOIN {stage} s ON s.id = t.id")
    row = conn.execute(text(sql)).one()
    return None if row[0] is None else tuple(float(v) for v in row)


def _update(store: Store, conn: Connection, target: str, stage: str, columns: list[str], sealed: frozenset) -> int:
    """Rewrite the known rows that differ from their staged version; how many did.

    A plain UPDATE rather than INSERT ... ON CONFLICT: SQLite lets an upsert's conflict rule
    override the GeoPackage R*Tree triggers' INSERT OR REPLACE, which then fails.
    """
    kept = columns[1:]
    sets = ", ".join(f'"{c}" = s."{c}"' for c in kept)
    # sealed values differ by their random IV alone: compared as plaintext
    old = ", ".join(f'onemap_decrypt({target}."{c}")' if c in sealed else f'{target}."{c}"' for c in kept)
    new = ", ".join(f'onemap_decrypt(s."{c}")' if c in sealed else f's."{c}"' for c in kept)
    differs = "IS DISTINCT FROM" if store.postgis else "IS NOT"
    return conn.execute(text(
        f"UPDATE {target} SET {sets} FROM {stage} s WHERE {target}.id = s.id AND ({old}) {differs} ({new})"
    )).rowcount


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
