"""Heatmap tiles and /stats over the scale-1 city, against the database's own bound (issue 4).

    .venv/bin/python bench/heatmap.py [--database-url URL] [--schema onemap] [--zooms 8-14] [--rounds 3]

Measures, one client, every tile rendered once per round (cold: no tile cache at all; the tiles
are rendered by the tile engine itself, as a cache miss is):

- `city cells`: the city-wide GROUP BY per resolution that unfiltered heatmap tiles and suppression
  read, with the cells' hexagons, built once per data version before the walk and timed apart
  (a server builds them on the first tile of a resolution after a start or a write);
- `onemap`: heatmap tiles as the tile engine renders them (WebMercatorQuad) from those cells;
- `onemap-sql`: the same tiles each counted by its own SQL GROUP BY (the path filtered tiles take);
- `bound`: the database alone answering the same tiles from a pre-aggregated hexagon table
  (cell, count, hexagon in EPSG:3857, GIST-indexed; a temporary table held in memory) with ST_AsMVT;
- `/stats` by grid, street and district for the whole city: in process, the query itself every
  time (7 calls); over HTTP, the first call of a fresh server (the query) and the next 6 (the
  answer kept for the data version, gis.stats.answers).

`onemap` and `bound` run in --rounds rounds, tile by tile in turn (which goes first alternates),
so that the drift of a shared machine's load hits both alike; the ratio is the median round's.
Goals: p95 <= 50 ms and throughput >= 0.8 x bound on heatmap tiles, /stats by grid <= 200 ms.
Tiles are those of the city's extent at each zoom (at most --per-zoom of them, spread evenly).
Results go to bench/results/<UTC time>/heatmap.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import h3
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis.settings import DatabaseSettings, ServerSettings, Settings  # noqa: E402
from gis.stats.aggregate import aggregate  # noqa: E402
from gis.storage.store import Store  # noqa: E402
from tiles.api import TileService  # noqa: E402
from tiles.matrix import EXTENT, GRIDS  # noqa: E402

BOUND_TABLE = "bench_h3_bound"
STATS = [(i, a) for i in ("residents", "urban_components") for a in ("grid", "street", "district")]


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(name: str, seconds: list[float], sizes: list[int] | None = None) -> dict:
    total = sum(seconds)
    out = {
        "name": name,
        "n": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1000, 2),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
        "tiles_per_s": round(len(seconds) / total, 1) if total else None,
    }
    if sizes is not None:
        out["mean_bytes"] = round(sum(sizes) / max(len(sizes), 1))
    return out


def city_tiles(grid, bbox, zooms, per_zoom: int) -> list[tuple[int, int, int]]:
    tiles = []
    for z in zooms:
        x0, y0, x1, y1 = grid.tile_range(z, bbox)
        every = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        step = max(1, len(every) // per_zoom)
        tiles += every[::step][:per_zoom]
    return tiles


def build_bound(conn, service: TileService, heatmap_id: str, resolutions: set[int]) -> None:
    """The pre-aggregated table the bound reads: the very cells the tiles show, with their hexagons.

    Temporary, on the connection that reads it: nothing is written to the store, and it stays in
    this session's memory (temp_buffers, set before the table exists) like a cached table would."""
    heatmap = service.engine.tileset(heatmap_id).heat[0]
    version = service.engine.layer_versions.get(heatmap.source, 0)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {BOUND_TABLE}")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE {BOUND_TABLE} (res int, cell bigint, cell_text text, n bigint,"
        " density float8, hex geometry(Polygon, 3857))"
    )
    for res in sorted(resolutions):
        city = service.engine.heat_tiles.cells.city(heatmap, res, version)
        rows = []
        for cell, n, v in zip(city.rows.cell.tolist(), city.rows.count.tolist(), city.rows.value().tolist()):
            name = h3.int_to_str(cell)
            ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(name)]
            wkt = "POLYGON((" + ", ".join(f"{x} {y}" for x, y in ring + ring[:1]) + "))"
            density = v / h3.cell_area(name, "km^2")
            rows.append({"r": res, "c": cell, "t": name, "n": n, "d": density, "w": wkt})
        if rows:
            conn.execute(
                text(
                    f"INSERT INTO {BOUND_TABLE} VALUES "
                    "(:r, :c, :t, :n, :d, ST_Transform(ST_GeomFromText(:w, 4326), 3857))"
                ),
                rows,
            )
    conn.exec_driver_sql(f"CREATE INDEX ON {BOUND_TABLE} USING gist (hex)")
    conn.exec_driver_sql(f"ANALYZE {BOUND_TABLE}")


def bound_tile(conn, grid, z: int, x: int, y: int, res: int) -> bytes:
    minx, miny, maxx, maxy = grid.bounds(z, x, y)
    sql = (
        "SELECT ST_AsMVT(q, 'h', {e}, 'geom', 'cell') FROM ("
        " SELECT cell, cell_text, n AS count, density, ST_AsMVTGeom(hex, ST_MakeEnvelope(%(a)s, %(b)s, %(c)s, %(d)s, 3857)::box2d, {e}, 64, true) AS geom"
        " FROM {t} WHERE res = %(r)s AND hex && ST_MakeEnvelope(%(a)s, %(b)s, %(c)s, %(d)s, 3857)) q"
    ).format(e=EXTENT, t=BOUND_TABLE)
    row = conn.exec_driver_sql(sql, {"a": minx, "b": miny, "c": maxx, "d": maxy, "r": res}).one()
    return bytes(row[0] or b"")


def timed(fn, tiles) -> tuple[list[float], list[int]]:
    seconds, sizes = [], []
    for tile in tiles:
        start = time.perf_counter()
        data = fn(*tile)
        seconds.append(time.perf_counter() - start)
        sizes.append(len(data))
    return seconds, sizes


def http_pass(args, store: Store, grid, tiles, zooms) -> dict:
    """The same cold tiles and /stats by grid through the whole app over HTTP (uvicorn, one client)."""
    import socket
    import threading

    import httpx
    import uvicorn

    from gis.app.factory import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        DatabaseSettings(database_url=args.database_url, schema_name=args.schema),
        ServerSettings(port=port, tile_cache_dir=None, base_url=f"http://127.0.0.1:{port}"),
    )
    app = create_app(settings, store)
    heat = app.state.tiles.engine.heat_tiles
    for name in args.heatmaps.split(","):
        heatmap = app.state.tiles.engine.tilesets[f"h3_{name}"].heat[0]
        version = app.state.tiles.engine.layer_versions.get(heatmap.source, 0)
        for res in {heatmap.resolution(grid.web_zoom(z)) for z in zooms}:
            heat.warm(heatmap, res, version)  # per data version, as after any write
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out: dict = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for name in args.heatmaps.split(","):
                def get(z, x, y, name=name):
                    response = client.get(f"/collections/h3_{name}/tiles/WebMercatorQuad/{z}/{y}/{x}")
                    assert response.status_code in (200, 204), response.text[:200]
                    return response.content

                s = summary(f"http-h3_{name}", *timed(get, tiles))
                out[f"h3_{name}"] = s
                say(f"  HTTP h3_{name:16} p50 {s['p50_ms']:6.2f} ms  p95 {s['p95_ms']:6.2f} ms  "
                    f"{s['tiles_per_s']:7.1f} tiles/s (cold tiles, one client)")
            for indicator, area in STATS:
                def stats(indicator=indicator, area=area):
                    response = client.get("/stats", params={"indicator": indicator, "by": area})
                    assert response.status_code == 200, response.text[:200]
                    return response.content

                # the first asks the database (no answer kept yet for this data version), the rest
                # are answered from the answer kept for it (gis.stats.answers)
                seconds = timed(stats, [()] * 7)[0]
                s = summary(f"http-stats-{indicator}-{area}", seconds[1:])
                s["first_ms"] = round(seconds[0] * 1000, 2)
                out[f"stats_by_{area}_{indicator}"] = s
                say(f"  HTTP /stats {indicator:16} by {area:8}: first {s['first_ms']:6.1f} ms, "
                    f"again p50 {s['p50_ms']:5.1f} ms, max {s['max_ms']:5.1f} ms (goal <= 200)")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    return out


def timed_pair(first, second, tiles):
    """Both renderers on every tile, alternating which goes first."""
    a: tuple[list[float], list[int]] = ([], [])
    b: tuple[list[float], list[int]] = ([], [])
    for n, tile in enumerate(tiles):
        order = ((first, a), (second, b)) if n % 2 == 0 else ((second, b), (first, a))
        for fn, out in order:
            start = time.perf_counter()
            data = fn(*tile)
            out[0].append(time.perf_counter() - start)
            out[1].append(len(data))
    return a, b


def rounds_of(onemap, raw, tiles, rounds: int) -> list[tuple]:
    """`rounds` walks of the tiles, each tile by both renderers in turn."""
    return [timed_pair(onemap, raw, tiles) for _ in range(rounds)]


def merged(name: str, walks: list[tuple[list[float], list[int]]]) -> dict:
    return summary(name, [t for w in walks for t in w[0]], [b for w in walks for b in w[1]])


def heatmap_run(args, store: Store, service: TileService, grid, tiles, zooms, name: str) -> dict:
    heatmap_id = f"h3_{name}"
    heatmap = service.engine.tileset(heatmap_id).heat[0]
    version = service.engine.layer_versions.get(heatmap.source, 0)
    resolutions = {heatmap.resolution(grid.web_zoom(z)) for z in zooms}
    builds = {}
    for res in sorted(resolutions):
        start = time.perf_counter()
        service.engine.heat_tiles.warm(heatmap, res, version)  # cells and their hexagons
        builds[res] = round((time.perf_counter() - start) * 1000, 1)
    say(f"{heatmap_id}: city cells built per resolution, once per data version (ms): {builds}")

    def onemap(z, x, y):
        return service.engine.render(service.engine.plan(heatmap_id, grid, z, x, y)).data

    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET temp_buffers = '256MB'")
        build_bound(conn, service, heatmap_id, resolutions)

        def raw(z, x, y):
            return bound_tile(conn, grid, z, x, y, heatmap.resolution(grid.web_zoom(z)))

        for tile in tiles[:: max(1, len(tiles) // 20)]:  # the statement planned and cached once, untimed
            raw(*tile)
        walks = rounds_of(onemap, raw, tiles, args.rounds)
        conn.exec_driver_sql(f"DROP TABLE {BOUND_TABLE}")
    ratios = [round(len(a[0]) / sum(a[0]) / (len(b[0]) / sum(b[0])), 2) for a, b in walks]
    median = sorted(range(len(walks)), key=lambda i: ratios[i])[len(walks) // 2]
    service.engine.heat_tiles.in_memory = False
    sql = timed(onemap, city_tiles(grid, store.layer_meta(heatmap.source).bbox, zooms, args.sql_per_zoom)) if args.sql_per_zoom else None
    service.engine.heat_tiles.in_memory = True
    run = {
        "heatmap": heatmap_id,
        "city_cells_ms": builds,
        "onemap": merged("onemap", [a for a, _ in walks]),
        "bound": merged("bound", [b for _, b in walks]),
        "rounds": [{"onemap": summary("onemap", *a), "bound": summary("bound", *b), "ratio": r} for (a, b), r in zip(walks, ratios)],
        "throughput_vs_bound": ratios[median],
        "load_average": os.getloadavg(),
    }
    if sql is not None:
        run["onemap-sql"] = summary("onemap-sql", *sql)
    for key in ("onemap", "onemap-sql", "bound"):
        if key in run:
            s = run[key]
            say(f"  {key:11} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  max {s['max_ms']:7.1f} ms  "
                f"{s['tiles_per_s']:7.1f} tiles/s  {s['mean_bytes']:6} B  ({s['n']} tiles)")
    per_round = ", ".join(f"{r['onemap']['tiles_per_s']:.0f}/{r['bound']['tiles_per_s']:.0f}" for r in run["rounds"])
    say(f"  throughput onemap / bound per round (tiles/s): {per_round} -> {ratios}; median {ratios[median]} (goal >= 0.8); "
        f"p95 {'meets' if run['onemap']['p95_ms'] <= 50 else 'misses'} 50 ms; load {run['load_average'][0]:.1f}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/onemap_bench"))
    parser.add_argument("--schema", default="onemap")
    parser.add_argument("--zooms", default="8-14", help="first-last WebMercator zoom")
    parser.add_argument("--per-zoom", type=int, default=120, help="at most this many tiles per zoom")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of onemap and bound")
    parser.add_argument("--sql-per-zoom", type=int, default=6, help="tiles per zoom for the per-tile SQL path (0: skip)")
    parser.add_argument("--heatmaps", default="residents,urban_components,floor_area")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-http", dest="http", action="store_false", help="skip the pass over HTTP")
    args = parser.parse_args()

    first, last = (int(v) for v in args.zooms.split("-"))
    zooms = range(first, last + 1)
    settings = Settings(
        DatabaseSettings(database_url=args.database_url, schema_name=args.schema),
        ServerSettings(tile_cache_dir=None),
    )
    store = Store.open(settings)
    if not store.postgis:
        say("bench/heatmap.py measures PostGIS; give --database-url postgresql+psycopg://...")
        return 2
    service = TileService(store, settings, cache_dir=None)
    grid = GRIDS["WebMercatorQuad"]
    bbox = store.layer_meta("population").bbox
    tiles = city_tiles(grid, bbox, zooms, args.per_zoom)
    load = os.getloadavg()
    say(f"heatmap bench: {len(tiles)} tiles per heatmap at zooms {first}-{last}, {args.rounds} rounds; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    results: dict = {"started": datetime.now(UTC).isoformat(), "load_average": load, "tiles": len(tiles), "runs": []}
    for name in args.heatmaps.split(","):
        results["runs"].append(heatmap_run(args, store, service, grid, tiles, zooms, name))

    from gis.stats.indicators import Indicators

    indicators = Indicators.load(settings.server.indicator_registry, store.catalog)
    for indicator_id, area in STATS:
        indicator = indicators.get(indicator_id)
        seconds = []
        for _ in range(7):
            start = time.perf_counter()
            aggregate(store, indicator, area, k=settings.server.suppression_k)
            seconds.append(time.perf_counter() - start)
        s = summary(f"stats-by-{area}-{indicator_id}", seconds)
        results[f"stats_by_{area}_{indicator_id}"] = s
        say(f"/stats {indicator_id:16} by {area:8} (whole city, in process): p50 {s['p50_ms']:6.1f} ms, "
            f"max {s['max_ms']:6.1f} ms (goal <= 200)")

    if args.http:
        results["http"] = http_pass(args, store, grid, tiles, zooms)

    results["load_average_end"] = os.getloadavg()
    say(f"load average at the end {results['load_average_end'][0]:.1f}")
    out = args.out or ROOT / "bench" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") / "heatmap.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"results: {out}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
