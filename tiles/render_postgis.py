"""Tiles built inside PostGIS: one statement per tile, one ST_AsMVT per layer.

WebMercatorQuad tiles read the stored `geom_3857` column (a generated, GIST-indexed copy of `geom`,
see gis.storage.backends.PostGIS.index_layer), so no row is transformed per request. The geographic
sets cut `geom` (EPSG:4490) directly: CGCS2000 and WGS 84 lon/lat differ by centimetres, below a
tile unit at every level served.

The SQL text depends only on the layer, the detail rules and whether a filter/modulus applies, so
it is built once and cached; each request binds the envelope numbers. A filter is any SQLAlchemy
where-clause over the layer's table (e.g. from CQL2), compiled with its own parameters.
"""

from __future__ import annotations

from functools import lru_cache

import psycopg
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.util import ClauseAdapter

from gis.catalog import AttrType
from gis.security.masking import masked_sql_postgres
from tiles.matrix import BUFFER, EXTENT
from tiles.plan import LayerPlan, Rendered, TilePlan

_DATE = "to_char(t.\"{n}\", 'YYYY-MM-DD')"
_DATETIME = "to_char(t.\"{n}\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def _column(name: str, kind: AttrType, masks: dict, sealed: tuple) -> str:
    # sealed at rest (gis.security.encryption): decrypted in the statement, as in /items
    value = f'onemap_decrypt(t."{name}")' if name in sealed else f't."{name}"'
    if name in masks:  # the same masking rule as /items (gis.security.masking), compiled for PostgreSQL
        return f'{masked_sql_postgres(value, masks[name])} AS "{name}"'
    if name in sealed:
        return f'{value} AS "{name}"'
    if kind is AttrType.date:
        return f'{_DATE.format(n=name)} AS "{name}"'
    if kind is AttrType.datetime:
        return f'{_DATETIME.format(n=name)} AS "{name}"'
    return f't."{name}"'


@lru_cache(maxsize=512)
def _layer_sql(
    schema: str,
    table: str,
    columns: tuple[tuple[str, AttrType], ...],
    srid: int,
    simplify: bool,
    thin: bool,
    modulus: bool,
    where_sql: str,
    i: int,
    masks: tuple = (),
    sealed: tuple = (),
) -> str:
    gcol = 't.geom_3857' if srid == 3857 else 't.geom'
    env = f"ST_MakeEnvelope(%(_x0)s, %(_y0)s, %(_x1)s, %(_y1)s, {srid})"
    benv = f"ST_MakeEnvelope(%(_bx0)s, %(_by0)s, %(_bx1)s, %(_by1)s, {srid})"
    geom = gcol
    if simplify:
        geom = f"ST_SnapToGrid({gcol}, %(_x0)s, %(_y1)s, %(_tol{i})s, %(_tol{i})s)"
    cols = ", ".join(["t.id", *(_column(n, k, dict(masks), sealed) for n, k in columns)])
    conditions = [f"{gcol} && {benv}"]
    if where_sql:
        conditions.append(f"({where_sql})")
    if modulus:
        conditions.append(f"t.id %% %(_mod{i})s = 0")
    inner = (
        f"SELECT {cols}, ST_AsMVTGeom({geom}, {env}::box2d, {EXTENT}, {BUFFER}, true) AS geom "
        f'FROM "{schema}"."{table}" t WHERE {" AND ".join(conditions)}'
    )
    # ordered, so a tile's bytes (and ETag) do not depend on the plan the database picked
    rows = f"SELECT * FROM ({inner}) r WHERE r.geom IS NOT NULL ORDER BY r.id"
    if thin:
        cell = f"%(_cell{i})s"
        keys = f"floor(ST_X(r.geom) / {cell}), floor(ST_Y(r.geom) / {cell})"
        rows = f"SELECT DISTINCT ON ({keys}) * FROM ({inner}) r WHERE r.geom IS NOT NULL ORDER BY {keys}, r.id"
    return f"SELECT ST_AsMVT(q, '{table}', {EXTENT}, 'geom', 'id') AS mvt{i}, count(*) AS n{i} FROM ({rows}) q"


def _compile_where(plan: LayerPlan, dialect: Dialect, i: int) -> tuple[str, dict]:
    if plan.where is None:
        return "", {}
    # the tile query aliases the layer's table as `t`: rewrite the clause's columns onto that alias
    adapted = ClauseAdapter(plan.table.alias("t")).traverse(plan.where)
    compiled = adapted.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = {f"_w{i}_{k}": v for k, v in compiled.params.items()}
    sql = str(compiled)
    for k in sorted(compiled.params, key=len, reverse=True):  # longest first: p_10 before p_1
        sql = sql.replace(f"%({k})s", f"%(_w{i}_{k})s")
    return sql, params


def render(conn: Connection, schema: str, plan: TilePlan, moduli: dict[str, int]) -> Rendered:
    """Run the tile's statement; `moduli` maps layer id to its budget id-modulus (1 = keep all)."""
    if not plan.layers:
        return Rendered(b"", {})
    return rendered(plan, _fetch_one(conn, *statement(conn.dialect, schema, plan, moduli)))


def rendered(plan: TilePlan, row) -> Rendered:
    """The tile from the statement's one row: per layer, its MVT bytes and its feature count."""
    chunks, counts = [], {}
    for i, lp in enumerate(plan.layers):
        mvt, n = row[2 * i], row[2 * i + 1]
        counts[lp.name] = int(n or 0)
        if n:
            chunks.append(bytes(mvt))
    # MVT layers are independent length-prefixed messages: concatenating tiles merges their layers
    return Rendered(b"".join(chunks), counts)


def _fetch_one(conn: Connection, sql: str, params: dict):
    """The statement on psycopg's own cursor, kept with the pooled connection: SQLAlchemy's execution
    layer (events, result metadata, a cursor per call) cost a tile more client CPU (~40 us) than
    everything else it does between the pool and the socket. Errors still arrive as SQLAlchemy's,
    and a connection found dead is invalidated, as SQLAlchemy would (the engine retries once)."""
    raw = conn.connection.driver_connection
    cursor = conn.connection.info.get("onemap_tile_cursor")
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = conn.connection.info["onemap_tile_cursor"] = raw.cursor()
    try:
        return cursor.execute(sql, params).fetchone()
    except psycopg.Error as err:
        dead = raw.broken or raw.closed
        if dead:
            conn.invalidate()
        raise DBAPIError.instance(sql, params, err, psycopg.Error, connection_invalidated=dead) from err


def statement(dialect: Dialect, schema: str, plan: TilePlan, moduli: dict[str, int]) -> tuple[str, dict]:
    """The tile's one statement and its parameters (the raw-database bound of bench/ runs it too)."""
    params: dict = {}
    for key, value in zip(("_x0", "_y0", "_x1", "_y1"), plan.bounds()):
        params[key] = value
    for key, value in zip(("_bx0", "_by0", "_bx1", "_by1"), plan.buffered):
        params[key] = value
    parts = []
    for i, lp in enumerate(plan.layers):
        where_sql, where_params = _compile_where(lp, dialect, i)
        params.update(where_params)
        modulus = moduli.get(lp.name, 1)
        parts.append(
            _layer_sql(
                schema,
                lp.table.name,
                tuple(lp.attributes),
                plan.grid.srid,
                lp.detail.grid_units > 0,
                lp.detail.thin_cell > 0,
                modulus > 1,
                where_sql,
                i,
                lp.masked,
                lp.sealed,
            )
        )
        params[f"_tol{i}"] = lp.detail.grid_units * plan.unit
        params[f"_cell{i}"] = lp.detail.thin_cell
        params[f"_mod{i}"] = modulus
    return "SELECT * FROM " + ", ".join(f"({p}) l{i}" for i, p in enumerate(parts)), params
