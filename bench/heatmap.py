"""Heatmap tiles and /stats over the scale-1 city, against the database's own bound (issue 4).

    .venv/bin/python bench/heatmap.py [--database-url URL] [--schema onemap] [--zooms 8-14]

Measures, one client, every tile rendered once (cold: no tile cache):

- `city cells`: the one-off city-wide GROUP BY per resolution that unfiltered heatmap tiles and
  suppression read, with the cells' hexagons (paid again only after a write to the layer);
- `onemap`: heatmap tiles as TileService renders them (WebMercatorQuad), city-wide cells built;
- `onemap-sql`: the same tiles each counted by its own SQL GROUP BY (the path filtered tiles take);
- `bound`: the database alone answering the same tiles from a pre-aggregated hexagon table
  (cell, count, hexagon in EPSG:3857, GIST-indexed) with ST_AsMVT;
- `/stats by grid` for the whole city.

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


def build_bound(store: Store, service: TileService, heatmap_id: str, resolutions: set[int]) -> None:
    """The pre-aggregated table the bound reads: the very cells the tiles show, with their hexagons."""
    heatmap = service.engine.tileset(heatmap_id).heat[0]
    version = service.engine.layer_versions.get(heatmap.source, 0)
    schema = store.schema
    with store.engine.begin() as conn:
        conn.execute(text(f'DROP TABLE IF EXISTS "{schema}".{BOUND_TABLE}'))
        conn.execute(
            text(
                f'CREATE TABLE "{schema}".{BOUND_TABLE} (res int, cell bigint, cell_text text, n bigint,'
                " density float8, hex geometry(Polygon, 3857))"
            )
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
                        f'INSERT INTO "{schema}".{BOUND_TABLE} VALUES '
                        "(:r, :c, :t, :n, :d, ST_Transform(ST_GeomFromText(:w, 4326), 3857))"
                    ),
                    rows,
                )
        conn.execute(text(f'CREATE INDEX ON "{schema}".{BOUND_TABLE} USING gist (hex)'))
        conn.execute(text(f'ANALYZE "{schema}".{BOUND_TABLE}'))


def bound_tile(conn, schema: str, grid, z: int, x: int, y: int, res: int) -> bytes:
    minx, miny, maxx, maxy = grid.bounds(z, x, y)
    sql = (
        "SELECT ST_AsMVT(q, 'h', {e}, 'geom', 'cell') FROM ("
        " SELECT cell, cell_text, n AS count, density, ST_AsMVTGeom(hex, ST_MakeEnvelope(%(a)s, %(b)s, %(c)s, %(d)s, 3857)::box2d, {e}, 64, true) AS geom"
        ' FROM "{s}".{t} WHERE res = %(r)s AND hex && ST_MakeEnvelope(%(a)s, %(b)s, %(c)s, %(d)s, 3857)) q'
    ).format(e=EXTENT, s=schema, t=BOUND_TABLE)
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
            for indicator in ("residents", "urban_components"):
                def stats(indicator=indicator):
                    response = client.get("/stats", params={"indicator": indicator, "by": "grid"})
                    assert response.status_code == 200, response.text[:200]
                    return response.content

                s = summary(f"http-stats-{indicator}", timed(stats, [()] * 7)[0])
                out[f"stats_by_grid_{indicator}"] = s
                say(f"  HTTP /stats {indicator} by grid: p50 {s['p50_ms']} ms, max {s['max_ms']} ms (goal <= 200)")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/onemap_bench"))
    parser.add_argument("--schema", default="onemap")
    parser.add_argument("--zooms", default="8-14", help="first-last WebMercator zoom")
    parser.add_argument("--per-zoom", type=int, default=120, help="at most this many tiles per zoom")
    parser.add_argument("--sql-per-zoom", type=int, default=6, help="tiles per zoom for the per-tile SQL path")
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
    say(f"heatmap bench: {len(tiles)} tiles per heatmap at zooms {first}-{last}; load average {load[0]:.1f}")
    results: dict = {"started": datetime.now(UTC).isoformat(), "load_average": load, "tiles": len(tiles), "runs": []}

    for name in args.heatmaps.split(","):
        heatmap_id = f"h3_{name}"
        heatmap = service.engine.tileset(heatmap_id).heat[0]
        version = service.engine.layer_versions.get(heatmap.source, 0)
        resolutions = {heatmap.resolution(grid.web_zoom(z)) for z in zooms}
        builds = {}
        for res in sorted(resolutions):
            start = time.perf_counter()
            service.engine.heat_tiles.warm(heatmap, res, version)  # cells and their hexagons
            builds[res] = round((time.perf_counter() - start) * 1000, 1)
        say(f"{heatmap_id}: city cells built per resolution (ms): {builds}")

        def onemap(z, x, y, heatmap_id=heatmap_id):
            return service.engine.render(service.engine.plan(heatmap_id, grid, z, x, y)).data

        build_bound(store, service, heatmap_id, resolutions)
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")

            def raw(z, x, y, heatmap=heatmap, conn=conn):
                return bound_tile(conn, store.schema, grid, z, x, y, heatmap.resolution(grid.web_zoom(z)))

            # tile by tile, the two in turn: on a shared machine both see the same load
            memory, bound = timed_pair(onemap, raw, tiles)
        service.engine.heat_tiles.in_memory = False
        sql = timed(onemap, city_tiles(grid, bbox, zooms, args.sql_per_zoom))
        service.engine.heat_tiles.in_memory = True
        run = {
            "heatmap": heatmap_id,
            "city_cells_ms": builds,
            "onemap": summary("onemap", *memory),
            "onemap-sql": summary("onemap-sql", *sql),
            "bound": summary("bound", *bound),
        }
        run["throughput_vs_bound"] = round(run["onemap"]["tiles_per_s"] / run["bound"]["tiles_per_s"], 2)
        results["runs"].append(run)
        for key in ("onemap", "onemap-sql", "bound"):
            s = run[key]
            say(f"  {key:11} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  max {s['max_ms']:7.1f} ms  "
                f"{s['tiles_per_s']:7.1f} tiles/s  {s['mean_bytes']:6} B")
        say(f"  throughput onemap / bound = {run['throughput_vs_bound']} (goal >= 0.8); "
            f"p95 {'meets' if run['onemap']['p95_ms'] <= 50 else 'misses'} 50 ms")
    with store.engine.begin() as conn:
        conn.execute(text(f'DROP TABLE IF EXISTS "{store.schema}".{BOUND_TABLE}'))

    if args.http:
        results["http"] = http_pass(args, store, grid, tiles, zooms)

    from gis.stats.indicators import Indicators

    indicators = Indicators.load(settings.server.indicator_registry, store.catalog)
    for indicator_id in ("residents", "urban_components"):
        indicator = indicators.get(indicator_id)
        seconds = []
        for _ in range(7):
            start = time.perf_counter()
            aggregate(store, indicator, "grid", k=settings.server.suppression_k)
            seconds.append(time.perf_counter() - start)
        s = summary(f"stats-by-grid-{indicator_id}", seconds)
        results[f"stats_by_grid_{indicator_id}"] = s
        say(f"/stats {indicator_id} by grid (whole city, in process): p50 {s['p50_ms']} ms, max {s['max_ms']} ms (goal <= 200)")

    out = args.out or ROOT / "bench" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") / "heatmap.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"results: {out}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
