"""The raw database bound: the very statements OneMap's PostGIS renderer runs, straight through psycopg.

Statements are built by OneMap's own code (TileEngine.plan + tiles.render_postgis) for each tile of
the list (`render_postgis.statement`), then run by N threads each holding one connection, over the
same tiles in the same order. A tile whose plan carries no layer at its zoom costs no statement (as
in OneMap). Only the first statement of a tile is run: OneMap's budget re-renders are its own cost.
"""

from __future__ import annotations

import statistics
import threading
import time

import psycopg

import cpu

from tilelist import Tile


def statements(database_url: str, tiles: list[Tile]) -> list[tuple[str, dict] | None]:
    from gis.settings import Settings
    from gis.storage.store import Store
    from tiles import render_postgis
    from tiles.engine import TileEngine
    from tiles.matrix import GRIDS

    store = Store.open(Settings.from_env(database_url=database_url))
    try:
        engine = TileEngine(store)
        grid = GRIDS["WebMercatorQuad"]
        out: list[tuple[str, dict] | None] = []
        for t in tiles:
            plan = engine.plan(t.layer, grid, t.z, t.x, t.y)
            out.append(render_postgis.statement(store.engine.dialect, store.schema, plan, {}) if plan.layers else None)
        return out
    finally:
        store.close()


def plain_statements(database_url: str, tiles: list[Tile], schema: str = "onemap") -> list[tuple[str, dict]]:
    """Context, not a goal: the statement a plain tile server sends for the same tile (tipg's shape:
    every column, the stored WebMercator geometry clipped to the tile, at most 10,000 features, no
    generalisation, thinning or hexagons), so the raw bound can be read against what the issue's
    figures describe ("raw ST_AsMVT queries on geometry stored in EPSG:3857")."""
    with psycopg.connect(conninfo(database_url)) as conn:
        columns = {
            layer: [n for (n,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name NOT IN ('geom', 'geom_3857') ORDER BY ordinal_position", (schema, layer)).fetchall()]
            for layer in {t.layer for t in tiles}
        }
    sql = {}
    for layer, cols in columns.items():
        listed = ", ".join(f't."{c}"' for c in cols)
        sql[layer] = (
            f"SELECT ST_AsMVT(q, '{layer}', 4096, 'geom') AS mvt, count(*) AS n FROM (SELECT {listed}, "
            "ST_AsMVTGeom(t.geom_3857, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 256, true) AS geom "
            f'FROM "{schema}"."{layer}" t WHERE ST_Intersects(t.geom_3857, ST_TileEnvelope(%(z)s, %(x)s, %(y)s)) '
            "LIMIT 10000) q"
        )
    return [(sql[t.layer], {"z": t.z, "x": t.x, "y": t.y}) for t in tiles]


def conninfo(database_url: str, schema: str = "onemap") -> str:
    return "postgresql://" + database_url.split("://", 1)[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def run(database_url: str, stmts: list, concurrency: int, seconds: float, schema: str = "onemap") -> dict:
    """Each tile once (in list order) over `concurrency` connections, stopping after `seconds`."""
    conns = [
        psycopg.connect(conninfo(database_url), options=f"-c search_path={schema},public -c statement_timeout=60000",
                        application_name="onemap-bench-raw", autocommit=True)
        for _ in range(concurrency)
    ]
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    sizes: list[int] = []
    per_tile: dict[int, tuple[float, int]] = {}
    errors = [0]
    first_error: list[str] = []
    deadline = time.perf_counter() + seconds

    def worker(conn):
        lat, size = [], []
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(stmts) or time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            nbytes = 0
            if stmts[i] is not None:
                sql, params = stmts[i]
                try:
                    row = conn.execute(sql, params).fetchone()
                    nbytes = sum(len(row[j]) for j in range(0, len(row), 2) if row[j + 1])
                except psycopg.Error as err:
                    with lock:
                        errors[0] += 1
                        if not first_error:
                            first_error.append(str(err).strip().splitlines()[0])
            dt = time.perf_counter() - t0
            lat.append(dt)
            size.append(nbytes)
            per_tile[i] = (dt, nbytes)
        with lock:
            latencies.extend(lat)
            sizes.extend(size)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    meter = cpu.Meter()  # after connecting, and stopped before the backends exit
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    used = meter.stop()
    for c in conns:
        c.close()
    n = len(latencies)
    return {
        "tiles": n,
        "complete": n == len(stmts),
        "seconds": round(elapsed, 3),
        "tiles_s": n / elapsed if elapsed else 0.0,
        "p50_ms": pct(latencies, 50) * 1000,
        "p95_ms": pct(latencies, 95) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "bytes_per_tile": statistics.fmean(sizes) if sizes else 0.0,
        "errors": errors[0],
        "first_error": first_error[0] if first_error else None,
        "empty": sum(1 for s in sizes if s == 0),
        "per_tile_s": per_tile,
        "cpu": used,
        "cpu_ms_per_tile": cpu.per_tile_ms(used, n),
    }
