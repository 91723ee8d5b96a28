"""The store-level write API: create, replace, patch or delete one feature in one transaction.

Each call writes the row and its H3 cell; the layer's triggers (gis.edit.triggers) move its data
version, exact feature count and extent in the same transaction. After the commit the writer
tells the tile cache which places changed (old and new bbox), so tiles, heatmaps and counts
keyed on the data version all show the change before the call returns.

Concurrency is optimistic: every row has an ETag (a hash of the stored row), and a write given
`if_match` compares it with the row locked for the transaction (SELECT ... FOR UPDATE on PostGIS,
BEGIN IMMEDIATE on SQLite), so of two writers holding the same ETag exactly one succeeds.

Values handed to the writer are already validated (gis.edit.validate): attribute values of the
right Python types, a shapely geometry in EPSG:4490 (lon/lat).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import ColumnElement, Connection, bindparam, func, select, text

from gis import hexagons
from gis.security.encryption import readable
from gis.storage.store import Store
from gis.storage.tables import STORAGE_SRID

LOG = logging.getLogger("onemap.edit")
BBox = tuple[float, float, float, float]
ID_TABLE = "onemap_edit_ids"  # per layer, the highest id the writer ever issued
# called inside the edit's transaction, before the commit (the audit entry lands with the edit)
OnWrite = Callable[[Connection, "EditResult"], None]


class EditError(Exception):
    """Base of what a write can refuse; `status` is the HTTP status the API answers with."""

    status = 400


class NotFound(EditError):
    status = 404


class Forbidden(EditError):
    """The row lies (or would come to lie) outside the rows the caller may write."""

    status = 403


class PreconditionFailed(EditError):
    """The row changed since the client read it (its ETag no longer matches)."""

    status = 412


@dataclass(frozen=True)
class EditResult:
    layer: str
    id: int
    operation: str  # create, replace, update, delete
    old_bbox: BBox | None
    new_bbox: BBox | None
    etag: str | None  # the row's new ETag; None once deleted
    version: int  # the layer's data version after the commit


def row_etag(values: Mapping[str, object], wkb: bytes | None) -> str:
    """A strong ETag: a hash of the stored row (attributes as stored, geometry as WKB)."""
    canonical = json.dumps({k: _canonical(v) for k, v in sorted(values.items())}, ensure_ascii=False)
    digest = hashlib.blake2b(canonical.encode(), digest_size=16)
    digest.update(wkb or b"")
    return f'"{digest.hexdigest()}"'


def _canonical(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match: strong comparison; `*` matches any current representation."""
    value = if_match.strip()
    if value == "*":
        return True
    return any(tag.strip() == etag for tag in value.split(",") if not tag.strip().startswith("W/"))


class FeatureWriter:
    """Writes to one store; `invalidate(layer, bbox)` is called after each commit (tiles)."""

    def __init__(self, store: Store, invalidate: Callable[[str, BBox | None], None] | None = None):
        self.store = store
        self.invalidate = invalidate

    # -- reading --------------------------------------------------------------------------------

    def etag(self, layer_id: str, fid: int) -> str | None:
        with self.store.engine.connect() as conn:
            row = self._row(conn, layer_id, fid, lock=False)
        return None if row is None else row[0]

    def read(self, layer_id: str, fid: int) -> tuple[str, dict, shapely.Geometry] | None:
        """(etag, attribute values as stored, geometry in EPSG:4490) of one row, or None."""
        with self.store.engine.connect() as conn:
            row = self._row(conn, layer_id, fid, lock=False, geometry=True)
        return None if row is None else (row[0], row[1], row[3])

    def _row(self, conn: Connection, layer_id: str, fid: int, lock: bool, geometry: bool = False):
        """(etag, attribute values, bbox) of a row, or None; locked for the transaction if asked."""
        table = self.store.tables[layer_id]
        attributes = self.store.catalog[layer_id].attributes
        names = [a.name for a in attributes]
        # values as written, decrypted where sealed at rest: what the ETag and a merge work on
        statement = select(*(readable(table, a) for a in attributes), self.store.backend.as_wkb(table.c.geom).label("wkb"))
        statement = statement.where(table.c.id == fid)
        if lock and self.store.postgis:
            statement = statement.with_for_update()
        row = conn.execute(statement).first()
        if row is None:
            return None
        values = dict(zip(names, row[:-1]))
        wkb = bytes(row[-1])
        shape = shapely.from_wkb(wkb)
        found = (row_etag(values, wkb), values, tuple(shape.bounds))
        return (*found, shape) if geometry else found

    # -- writing --------------------------------------------------------------------------------

    def create(
        self,
        layer_id: str,
        geom: shapely.Geometry,
        values: Mapping[str, object],
        scope: ColumnElement | None = None,
        on_write: OnWrite | None = None,
    ) -> EditResult:
        """`scope`: a where-clause the new row must satisfy (a caller limited to some streets)."""
        table = self.store.tables[layer_id]
        with self._transaction(layer_id) as conn:
            fid = self._next_id(conn, layer_id)
            sealed = self.store.key.seal_row(self.store.catalog[layer_id], dict(values))
            conn.execute(table.insert().values(id=fid, **sealed, **self._geometry_values(geom)))
            self._in_scope(conn, layer_id, fid, scope, "would lie")
            etag, _, new_bbox = self._row(conn, layer_id, fid, lock=False)
            result = EditResult(layer_id, fid, "create", None, new_bbox, etag, self._version(conn, layer_id))
            if on_write is not None:
                on_write(conn, result)
        return self._done(result)

    def replace(
        self,
        layer_id: str,
        fid: int,
        geom: shapely.Geometry,
        values: Mapping[str, object],
        if_match: str | None = None,
        keep: frozenset[str] = frozenset(),
        scope: ColumnElement | None = None,
        on_write: OnWrite | None = None,
    ) -> EditResult:
        """Every attribute not in `values` becomes NULL, except those in `keep` (kept as stored)."""
        layer = self.store.catalog[layer_id]
        full = {a.name: values.get(a.name) for a in layer.attributes if a.name not in keep}
        return self._update(layer_id, fid, geom, full, if_match, "replace", scope, on_write)

    def patch(
        self,
        layer_id: str,
        fid: int,
        geom: shapely.Geometry | None,
        values: Mapping[str, object],
        if_match: str | None = None,
        scope: ColumnElement | None = None,
        on_write: OnWrite | None = None,
    ) -> EditResult:
        """Only the attributes in `values` (and the geometry, if given) change."""
        return self._update(layer_id, fid, geom, dict(values), if_match, "update", scope, on_write)

    def delete(
        self,
        layer_id: str,
        fid: int,
        if_match: str | None = None,
        scope: ColumnElement | None = None,
        on_write: OnWrite | None = None,
    ) -> EditResult:
        table = self.store.tables[layer_id]
        with self._transaction(layer_id) as conn:
            _, _, old_bbox = self._checked(conn, layer_id, fid, if_match, scope)
            conn.execute(table.delete().where(table.c.id == fid))
            result = EditResult(layer_id, fid, "delete", old_bbox, None, None, self._version(conn, layer_id))
            if on_write is not None:
                on_write(conn, result)
        return self._done(result)

    def _update(self, layer_id, fid, geom, values, if_match, operation, scope, on_write) -> EditResult:
        table = self.store.tables[layer_id]
        with self._transaction(layer_id) as conn:
            _, _, old_bbox = self._checked(conn, layer_id, fid, if_match, scope)
            changes = self.store.key.seal_row(self.store.catalog[layer_id], dict(values))
            if geom is not None:
                changes.update(self._geometry_values(geom))
            if changes:
                conn.execute(table.update().where(table.c.id == fid).values(**changes))
            self._in_scope(conn, layer_id, fid, scope, "would come to lie")
            etag, _, new_bbox = self._row(conn, layer_id, fid, lock=False)
            result = EditResult(layer_id, fid, operation, old_bbox, new_bbox, etag, self._version(conn, layer_id))
            if on_write is not None:
                on_write(conn, result)
        return self._done(result)

    def _in_scope(self, conn: Connection, layer_id: str, fid: int, scope, how: str) -> None:
        if scope is None:
            return
        table = self.store.tables[layer_id]
        if conn.execute(select(table.c.id).where(table.c.id == fid, scope)).first() is None:
            raise Forbidden(f"item {fid} of {layer_id} {how} outside the streets or grids you may change")

    def _checked(self, conn: Connection, layer_id: str, fid: int, if_match: str | None, scope=None):
        row = self._row(conn, layer_id, fid, lock=True)
        if row is None:
            raise NotFound(f"no item {fid} in {layer_id}")
        self._in_scope(conn, layer_id, fid, scope, "lies")
        if if_match is not None and not etag_matches(if_match, row[0]):
            raise PreconditionFailed(
                f"item {fid} in {layer_id} changed since you read it (its ETag is now {row[0]}): "
                "GET it again, reapply your change, and send the new ETag in If-Match"
            )
        return row

    def backfill_h3(self, layer_id: str, batch: int = 10_000) -> int:
        """Fill the H3 cell of rows written without one (by other systems); returns how many."""
        table = self.store.tables[layer_id]
        filled = 0
        missing = select(table.c.id, self.store.backend.as_wkb(table.c.geom)).where(table.c.h3.is_(None)).limit(batch)
        while True:
            with self.store.engine.connect() as conn:
                if conn.execute(missing).first() is None:  # the usual case: no write lock taken
                    return filled
            with self.store.engine.connect() as conn:
                conn = conn.execution_options(onemap_write=True)
                with conn.begin():
                    rows = conn.execute(missing).all()
                    if not rows:
                        return filled
                    cells = hexagons.cells(np.asarray(shapely.from_wkb([bytes(r[1]) for r in rows]), dtype=object))
                    conn.execute(
                        table.update().where(table.c.id == bindparam("_id")).values(h3=bindparam("_h3")),
                        [{"_id": r[0], "_h3": c} for r, c in zip(rows, cells)],
                    )
            filled += len(rows)

    def _next_id(self, conn: Connection, layer_id: str) -> int:
        """Above every id the layer holds or ever issued: a deleted item's id is never reused, so
        a stale link or ETag can never reach a different feature. The row lock serialises creators."""
        ids = f'"{self.store.schema}".{ID_TABLE}' if self.store.postgis else ID_TABLE  # migration 0005
        conn.execute(text(f"INSERT INTO {ids} (layer, last_id) VALUES (:l, 0) ON CONFLICT (layer) DO NOTHING"), {"l": layer_id})
        lock = " FOR UPDATE" if self.store.postgis else ""
        issued = conn.execute(text(f"SELECT last_id FROM {ids} WHERE layer = :l{lock}"), {"l": layer_id}).scalar_one()
        table = self.store.tables[layer_id]
        held = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        fid = max(int(issued), int(held)) + 1
        conn.execute(text(f"UPDATE {ids} SET last_id = :i WHERE layer = :l"), {"i": fid, "l": layer_id})
        return fid

    def _geometry_values(self, geom: shapely.Geometry) -> dict:
        shapes = np.asarray([geom], dtype=object)
        cell = hexagons.cells(shapes)[0]
        if self.store.postgis:
            wkb = shapely.to_wkb(geom)
            return {"geom": func.ST_GeomFromWKB(wkb, STORAGE_SRID), "h3": cell}
        return {"geom": self.store.backend.geom_values(shapes)[0], "h3": cell}

    def _version(self, conn: Connection, layer_id: str) -> int:
        meta = self.store.meta
        return int(conn.execute(select(meta.c.version).where(meta.c.layer == layer_id)).scalar_one())

    @contextmanager
    def _transaction(self, layer_id: str) -> Iterator[Connection]:
        with self.store.engine.connect() as conn:
            conn = conn.execution_options(onemap_write=True)  # BEGIN IMMEDIATE on SQLite
            with conn.begin():
                if self.store.postgis:
                    conn.execute(text("SET LOCAL onemap.writer = 'on'"))  # the H3 cell comes with the geometry
                yield conn

    def _done(self, result: EditResult) -> EditResult:
        if self.invalidate is not None:
            for bbox in {result.old_bbox, result.new_bbox} - {None}:
                try:
                    self.invalidate(result.layer, bbox)
                except Exception:  # the write is committed; a stale tile must not turn it into an error
                    LOG.exception("tile invalidation after %s of %s/%s failed", result.operation, result.layer, result.id)
        return result
