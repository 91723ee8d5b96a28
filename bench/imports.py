"""Import throughput: `onemap load` against `ogr2ogr` loading the same file into the same PostGIS.

    .venv/bin/python bench/imports.py [--rows 200000] [--database postgresql://postgres@127.0.0.1/onemap_test]

Writes a GeoPackage of street lamps (points, CGCS2000 3-degree Gauss-Krüger EPSG:4549, so both
tools reproject to EPSG:4490) and one of building footprints (polygons), then loads each
(a) with `onemap load` into a fresh OneMap schema and (b) with `ogr2ogr` (COPY, GiST index,
reprojected to EPSG:4490) into a fresh schema of the same database. Both are timed end to end as
the commands an operator runs, start-up included; rows/s and the ratio are printed and written
to bench/results/imports.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyogrio
import pyproj
import shapely

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/onemap_test"


def lamps(path: Path, n: int, rng: np.random.Generator) -> None:
    lon = 120.05 + rng.random(n) * 0.3
    lat = 30.15 + rng.random(n) * 0.25
    x, y = pyproj.Transformer.from_crs(4490, 4549, always_xy=True).transform(lon, lat)
    geoms = shapely.to_wkb(shapely.points(x, y))
    fields = {
        "SID": np.array([f"LAMP-{i:08d}" for i in range(n)], dtype=object),
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
        "SID": np.array([f"B-{i:08d}" for i in range(n)], dtype=object),
        "address": np.array([f"{i} Bench Road" for i in range(n)], dtype=object),
        "use_class": np.array(rng.choice(["residential", "commercial", "office"], n), dtype=object),
        "floors": floors.astype(np.int64),
        "height_m": (floors * 3.0).astype(np.float64),
    }
    pyogrio.raw.write(
        str(path), geometry=geoms, field_data=list(fields.values()), fields=list(fields), layer="buildings",
        driver="GPKG", geometry_type="Polygon", crs="EPSG:4549",
    )


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", database, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool; the best counts")
    args = parser.parse_args()
    db = urlparse(args.database)
    pg = f"PG:host={db.hostname} port={db.port or 5432} user={db.username or 'postgres'} dbname={db.path.lstrip('/')}"
    rng = np.random.default_rng(7)
    results = {"rows": args.rows, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("lamps", "urban_components", lamps), ("buildings", "buildings", buildings)]
        for name, layer, make in sets:
            path = Path(tmp) / f"{name}.gpkg"
            make(path, args.rows, rng)
            ours, theirs = [], []
            for _ in range(args.repeat):
                psql(args.database, "DROP SCHEMA IF EXISTS bench_onemap CASCADE; DROP SCHEMA IF EXISTS bench_ogr CASCADE; "
                                    "CREATE SCHEMA bench_ogr")
                env = dict(os.environ, ONEMAP_DATABASE_URL=args.database, ONEMAP_SCHEMA_NAME="bench_onemap")
                # the empty store first, so both tools load into a database that is already set up
                timed([sys.executable, "-m", "gis.cli", "migrate"], env)
                ours.append(timed([sys.executable, "-m", "gis.cli", "load", str(path), "--layer", layer,
                                   "--source-id", "SID", "--quiet"], env))
                theirs.append(timed(["ogr2ogr", "-f", "PostgreSQL", pg, str(path), "-nln", f"bench_ogr.{name}",
                                     "-t_srs", "EPSG:4490", "-lco", "GEOMETRY_NAME=geom", "-lco", "SPATIAL_INDEX=GIST",
                                     "--config", "PG_USE_COPY", "YES"]))
            best_ours, best_theirs = min(ours), min(theirs)
            results["files"][name] = {
                "onemap_seconds": round(best_ours, 3), "ogr2ogr_seconds": round(best_theirs, 3),
                "onemap_rows_per_s": round(args.rows / best_ours), "ogr2ogr_rows_per_s": round(args.rows / best_theirs),
                "ratio": round(best_theirs / best_ours, 2),
            }
            r = results["files"][name]
            print(f"{name:9} {args.rows} rows: onemap load {r['onemap_rows_per_s']:>8,} rows/s ({best_ours:.2f} s), "
                  f"ogr2ogr {r['ogr2ogr_rows_per_s']:>8,} rows/s ({best_theirs:.2f} s): {r['ratio']:.2f}x ogr2ogr")
        psql(args.database, "DROP SCHEMA IF EXISTS bench_onemap CASCADE; DROP SCHEMA IF EXISTS bench_ogr CASCADE")
    out = ROOT / "bench" / "results" / "imports.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
