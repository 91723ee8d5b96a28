"""Import throughput: `onemap load` against `ogr2ogr` loading the same file into the same PostGIS.

    .venv/bin/python bench/imports.py [--city postgresql://postgres@127.0.0.1:5432/onemap_bench]
                                      [--database postgresql://postgres@127.0.0.1:5432/onemap_imports_bench]
                                      [--repeat 5] [--synthetic --rows 200000] [--into-layer 20000]

The files: the street furniture (200,000 points) and the buildings (189,924 polygons) of the
scale-1 demo city, exported from `--city` with ogr2ogr to GeoPackages, as a department would hand
them over; without a city (or with --synthetic) generated lamps and footprints in CGCS2000
Gauss-Krüger EPSG:4549, so both tools reproject to EPSG:4490. Each file is loaded, alternately,
(a) by `onemap load` into a fresh OneMap schema (migrated first, so both load into a database
that is set up) and (b) by `ogr2ogr` with its PostgreSQL defaults (COPY, GiST index) into a
fresh schema of the same database. Both are timed end to end as the commands an operator runs,
start-up included. The table gives the median of the runs, rows/s and the ratio, and the load
average the runs saw (the machine is shared); bench/results/imports.json keeps every run.
The database is created (with PostGIS) when missing; it is never the city's.

After the runs it times the server's own statements for one such load into OneMap's layer
table (COPY, the index builds, ANALYZE), the floor of any loader into that table design.

With --into-layer N (20,000 by default, 0 to skip) it also times what the peer does when asked
for the same result, ogr2ogr appending the file's first N rows into OneMap's own layer table
(fid as id, sid as source_id, the other fields by name): the table's generated WebMercator
column keeps GDAL from using COPY, so it inserts row by row, firing the layer's triggers per
row, and leaves the H3 cells empty. Context for the first table, not its peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import psycopg
import pyogrio
import pyproj
import shapely
from sqlalchemy import create_engine, text

from gis.imports import write

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu  # noqa: E402  (bench/cpu.py)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/onemap_imports_bench"
DEFAULT_CITY = "postgresql://postgres@127.0.0.1:5432/onemap_bench"
# what a department's export of the city's layers looks like: its own key, the attributes, the geometry
CITY_EXPORTS = {
    "urban_components": "SELECT 'U-' || id AS sid, type_code, type_name, owner_dept, status, updated_at, grid, "
                        "street, geom FROM onemap.urban_components",
    "buildings": "SELECT 'B-' || id AS sid, address, use_class, floors, height_m, floor_area_m2, pop_estimate, "
                 "year_built, year_built_date, grid, street, geom FROM onemap.buildings",
}


def lamps(path: Path, n: int, rng: np.random.Generator) -> None:
    lon = 120.05 + rng.random(n) * 0.3
    lat = 30.15 + rng.random(n) * 0.25
    x, y = pyproj.Transformer.from_crs(4490, 4549, always_xy=True).transform(lon, lat)
    geoms = shapely.to_wkb(shapely.points(x, y))
    fields = {
        "sid": np.array([f"LAMP-{i:08d}" for i in range(n)], dtype=object),
        "type_code": np.array(["0125"] * n, dtype=object),
        "type_name": np.array(["street lamp"] * n, dtype=object),
        "owner_dept": np.array(rng.choice(["roads", "lighting", "parks"], n), dtype=object),
        "status": np.array(rng.choice(["normal", "damaged", "missing"], n, p=[0.9, 0.07, 0.03]), dtype=object),
    }
    pyogrio.raw.write(
        str(path), geometry=geoms, field_data=list(fields.values()), fields=list(fields), layer="lamps",
        driver="GPKG", geometry_type="Point", crs="EPSG:4549",
    )


def buildings(path: Path, n: int, rng: np.random.Generator) -> None:
    cx = 120.05 + rng.random(n) * 0.3
    cy = 30.15 + rng.random(n) * 0.25
    w, h = 5e-5 + rng.random(n) * 2e-4, 5e-5 + rng.random(n) * 2e-4
    boxes = shapely.box(cx - w, cy - h, cx + w, cy + h)
    x_of = pyproj.Transformer.from_crs(4490, 4549, always_xy=True)

    def project(coords):
        x, y = x_of.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    geoms = shapely.to_wkb(shapely.transform(boxes, project))
    floors = rng.integers(1, 30, n)
    fields = {
        "sid": np.array([f"B-{i:08d}" for i in range(n)], dtype=object),
        "address": np.array([f"{i} Bench Road" for i in range(n)], dtype=object),
        "use_class": np.array(rng.choice(["residential", "commercial", "office"], n), dtype=object),
        "floors": floors.astype(np.int64),
        "height_m": (floors * 3.0).astype(np.float64),
    }
    pyogrio.raw.write(
        str(path), geometry=geoms, field_data=list(fields.values()), fields=list(fields), layer="buildings",
        driver="GPKG", geometry_type="Polygon", crs="EPSG:4549",
    )


def pg_source(url: str) -> str:
    db = urlparse(url)
    return f"PG:host={db.hostname} port={db.port or 5432} user={db.username or 'postgres'} dbname={db.path.lstrip('/')}"


def files(tmp: Path, args) -> list[tuple[str, str, Path]]:
    """(name, layer, path) of each file to load: the city's layers, or generated ones."""
    out = []
    if not args.synthetic and _reachable(args.city):
        for layer, sql in CITY_EXPORTS.items():
            path = tmp / f"{layer}.gpkg"
            subprocess.run(["ogr2ogr", "-f", "GPKG", str(path), pg_source(args.city), "-sql", sql, "-nln", layer],
                           check=True, capture_output=True)
            out.append((layer, layer, path))
        return out
    rng = np.random.default_rng(7)
    for name, layer, make in (("lamps", "urban_components", lamps), ("footprints", "buildings", buildings)):
        path = tmp / f"{name}.gpkg"
        make(path, args.rows, rng)
        out.append((name, layer, path))
    return out


def _reachable(url: str) -> bool:
    probe = subprocess.run(["psql", url, "-tAqc", "SELECT count(*) FROM onemap.buildings"], capture_output=True)
    return probe.returncode == 0


def ensure_database(url: str) -> None:
    db = urlparse(url)
    name = db.path.lstrip("/")
    server = url.rsplit("/", 1)[0] + "/postgres"
    found = subprocess.run(["psql", server, "-tAqc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if not found:
        psql(server, f'CREATE DATABASE "{name}"')
    psql(url, "CREATE EXTENSION IF NOT EXISTS postgis")


def rows_in(path: Path) -> int:
    return int(pyogrio.read_info(str(path))["features"])


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", database, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


SCHEMA = "bench_onemap"  # OneMap's schema in the bench database (ONEMAP_SCHEMA_NAME of every command)


def fresh_onemap_schema(args, env: dict) -> None:
    """An empty, migrated OneMap store in the bench database, as a city's first load meets it."""
    psql(args.database, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    timed([sys.executable, "-m", "gis.cli", "migrate"], env)


def measured(command: list[str], env: dict | None = None) -> dict:
    """`timed`, with where the CPU went meanwhile (bench/cpu.py): the command's own process and its
    children ("load tool"), PostgreSQL's backends, and anything else on the machine."""
    meter = cpu.Meter()
    seconds = timed(command, env)
    used = meter.stop()
    return {"seconds": seconds, "client_cpu": used["load tool"], "postgres_cpu": used["PostgreSQL"],
            "other_cpu": used["other"]}


def server_floor(args, env: dict, layer: str) -> dict:
    """What the server alone spends on a load into OneMap's layer table, timed statement by statement:
    the rows `onemap load` wrote, copied out, then COPY'd into a freshly migrated, empty layer table
    whose secondary indexes are dropped (as a first load's are), each index built again and ANALYZE,
    as `onemap load` does them (gis.imports.write), then rolled back. No client work is in it, so no
    loader can write into this table design faster than this."""
    schema, table = SCHEMA, f'"{SCHEMA}"."{layer}"'
    with psycopg.connect(args.database, autocommit=True) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position", (schema, layer))]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = bytearray()
        with conn.cursor().copy(f"COPY (SELECT {listed} FROM {table}) TO STDOUT") as copy:
            for block in copy:
                rows += block
    fresh_onemap_schema(args, env)
    engine = create_engine(args.database.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:  # one transaction, rolled back when the block ends
        indexes = write.secondary_indexes(conn, schema, layer)  # the ones onemap load drops and rebuilds
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{schema}"."{name}"'))
        conn.execute(text(write.INDEX_BUILD_MEMORY))
        started = time.perf_counter()
        with conn.connection.driver_connection.cursor().copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
            copy.write(bytes(rows))
        copied = time.perf_counter() - started
        built = {}
        for name, definition in indexes:
            started = time.perf_counter()
            conn.execute(text(definition))
            built[name] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        conn.execute(text(f"ANALYZE {table}"))
        analysed = time.perf_counter() - started
    engine.dispose()
    total = copied + sum(built.values()) + analysed
    return {"copy": round(copied, 3), "indexes": built, "analyze": round(analysed, 3), "total": round(total, 3)}


def into_layer(args, env: dict, path: Path, layer: str, n: int) -> dict:
    """ogr2ogr appending the file's first n rows into a freshly migrated OneMap layer table."""
    fresh_onemap_schema(args, env)
    fields = [str(f) for f in pyogrio.read_info(str(path))["fields"] if f != "sid"]
    source = pyogrio.list_layers(str(path))[0][0]
    sql = f"SELECT fid AS id, sid AS source_id, {', '.join(fields)}, geom FROM {source}"
    seconds = timed(["ogr2ogr", "-append", "-f", "PostgreSQL", pg_source(args.database), str(path), "-preserve_fid",
                     "-nln", f"{SCHEMA}.{layer}", "-limit", str(n), "-sql", sql])
    psql(args.database, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return {"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds)}


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda x: x["seconds"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=DEFAULT_DB, help="where both tools load (created if missing)")
    parser.add_argument("--city", default=DEFAULT_CITY, help="the demo city whose layers are exported")
    parser.add_argument("--synthetic", action="store_true", help="generated files instead of the city's")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of each generated file")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool and file; the median counts")
    parser.add_argument("--into-layer", type=int, default=20_000, metavar="N",
                        help="also time ogr2ogr appending N rows into OneMap's layer table (0: skip)")
    args = parser.parse_args()
    if args.database.rstrip("/").endswith(urlparse(args.city).path):
        sys.exit("--database must not be the city's database: the bench drops schemas in it")
    ensure_database(args.database)
    results = {"repeat": args.repeat, "loadavg_before": os.getloadavg(), "files": {}}
    env = dict(os.environ, ONEMAP_DATABASE_URL=args.database, ONEMAP_SCHEMA_NAME=SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        for name, layer, path in files(Path(tmp), args):
            rows = rows_in(path)
            ours, theirs = [], []
            for _ in range(args.repeat):
                psql(args.database, "DROP SCHEMA IF EXISTS bench_ogr CASCADE; CREATE SCHEMA bench_ogr")
                fresh_onemap_schema(args, env)
                ours.append(measured([sys.executable, "-m", "gis.cli", "load", str(path), "--layer", layer,
                                      "--source-id", "sid", "--quiet"], env))
                theirs.append(measured(["ogr2ogr", "-f", "PostgreSQL", pg_source(args.database), str(path),
                                        "-nln", f"bench_ogr.{name}", "-t_srs", "EPSG:4490", "-lco", "GEOMETRY_NAME=geom"]))
            mine = statistics.median(r["seconds"] for r in ours)
            peer = statistics.median(r["seconds"] for r in theirs)
            floor = server_floor(args, env, layer)  # the last OneMap run's rows, still in bench_onemap
            appended = into_layer(args, env, path, layer, min(args.into_layer, rows)) if args.into_layer else None
            results["files"][name] = {
                "layer": layer, "rows": rows, "onemap_seconds": [r["seconds"] for r in ours],
                "ogr2ogr_seconds": [r["seconds"] for r in theirs], "onemap_runs": ours, "ogr2ogr_runs": theirs,
                "onemap_rows_per_s": round(rows / mine), "ogr2ogr_rows_per_s": round(rows / peer),
                "ratio": round(peer / mine, 2),
                "server_floor": floor,
                "ogr2ogr_into_layer": appended,
            }
        psql(args.database, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS bench_ogr CASCADE")
    results["loadavg_after"] = os.getloadavg()
    print(f"{'file':18} {'rows':>8} {'onemap load':>14} {'ogr2ogr':>14} {'ratio':>6}   (median of {args.repeat}, rows/s)")
    for name, r in results["files"].items():
        print(f"{name:18} {r['rows']:>8,} {r['onemap_rows_per_s']:>14,} {r['ogr2ogr_rows_per_s']:>14,} {r['ratio']:>5.2f}x")
    for name, r in results["files"].items():
        f = r["server_floor"]
        print(f"{name}: the server's own work for OneMap's layer table, statement by statement: COPY {f['copy']:.2f} s, "
              f"{len(f['indexes'])} index builds {sum(f['indexes'].values()):.2f} s, ANALYZE {f['analyze']:.2f} s: "
              f"{f['total']:.2f} s, against ogr2ogr's whole load {statistics.median(r['ogr2ogr_seconds']):.2f} s (median)")
    for name, r in results["files"].items():
        # CPU is work the machine must do whatever the schedule: on N CPUs a load needs at least its CPU / N
        a, b = _median_run(r["onemap_runs"]), _median_run(r["ogr2ogr_runs"])
        need = a["client_cpu"] + a["postgres_cpu"]
        print(f"{name}: CPU of the median runs: onemap load {a['client_cpu']:.2f} s in its process + "
              f"{a['postgres_cpu']:.2f} s in PostgreSQL = {need:.2f} s, at least {need / os.cpu_count():.2f} s on "
              f"{os.cpu_count()} CPUs (took {a['seconds']:.2f}); ogr2ogr {b['client_cpu']:.2f} + "
              f"{b['postgres_cpu']:.2f} = {b['client_cpu'] + b['postgres_cpu']:.2f} s (took {b['seconds']:.2f})")
    for name, r in results["files"].items():
        if r["ogr2ogr_into_layer"]:
            a = r["ogr2ogr_into_layer"]
            print(f"{name}: ogr2ogr -append of {a['rows']:,} rows into OneMap's layer table: {a['seconds']:.1f} s, "
                  f"{a['rows_per_s']:,} rows/s (no COPY: the table has a generated column; H3 cells left empty)")
    before, after = results["loadavg_before"], results["loadavg_after"]
    print(f"load average (1/5/15 min) before {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f}, "
          f"after {after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f}; {os.cpu_count()} CPUs")
    out = ROOT / "bench" / "results" / "imports.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
