"""`onemap seed` and `onemap export` run as an operator runs them: subprocesses, configured by the
environment, checked by reading what they wrote with other tools (sqlite3, GDAL, the pmtiles
reader) and comparing tile by tile with what the live server answers for the same tiles."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys

import httpx
from click.testing import CliRunner
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from tests.oracle import read_layer, readable_layers
from tests.tiles_support import tile_of

ZOOMS = (14, 15)


def onemap(store, *args: str, cwd, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ONEMAP_DATABASE_URL": store.settings.database.database_url,
        "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name,
        "PYTHONPATH": str(cwd),
        **(extra_env or {}),
    }
    command = [sys.executable, "-c", "from gis.cli import main; main(prog_name='onemap')", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def area(store):
    """A small area around a camera (a few hundred metres), as a --bbox and as numbers."""
    p = read_layer(store, "cameras")[10].geom
    bbox = (p.x - 0.004, p.y - 0.003, p.x + 0.004, p.y + 0.003)
    return bbox, ",".join(f"{v:.6f}" for v in bbox)


def web_tiles(bbox_text: str, zooms) -> list[tuple[int, int, int]]:
    minx, miny, maxx, maxy = (float(v) for v in bbox_text.split(","))
    out = []
    for z in zooms:
        x0, y0 = tile_of(minx, maxy, z)
        x1, y1 = tile_of(maxx, miny, z)
        out += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return out


@pytest.fixture(scope="module")
def server_tiles(live_server, area):
    """What the server answers for the area's tiles: {(tileset, z, x, y): bytes (b"" when 204)}."""
    out = {}
    with httpx.Client(base_url=live_server, timeout=60) as http:
        for tileset, prefix in (("onemap", "/tiles"), ("cameras", "/collections/cameras/tiles")):
            for z, x, y in web_tiles(area[1], ZOOMS):
                response = http.get(f"{prefix}/WebMercatorQuad/{z}/{y}/{x}")
                assert response.status_code in (200, 204)
                out[(tileset, z, x, y)] = response.content
    assert any(out.values())
    return out


def test_seed_fills_the_disk_cache_with_the_tiles_the_server_would_render(store, repo_root, tmp_path, area, server_tiles):
    cache = tmp_path / "cache"
    run = onemap(store, "seed", "--tileset", "cameras", "--minzoom", "14", "--maxzoom", "15", "--bbox", area[1],
                 cwd=repo_root, extra_env={"ONEMAP_TILE_CACHE_DIR": str(cache)})
    assert run.returncode == 0, run.stderr
    assert "tiles/s" in run.stdout
    expected = web_tiles(area[1], ZOOMS)
    assert f"{len(expected)}/{len(expected)} tiles" in run.stderr, "plain progress lines when not on a terminal"
    with sqlite3.connect(cache / "tiles.sqlite") as conn:
        rows = conn.execute("SELECT z, x, y, data FROM tiles WHERE tileset='cameras' AND tms='WebMercatorQuad'").fetchall()
    assert all(bytes(data)[:2] == b"\x1f\x8b" for *_, data in rows if data), "the cache stores tiles gzipped"
    seeded = {(z, x, y): gzip.decompress(data) if data else b"" for z, x, y, data in rows}
    assert set(seeded) == set(expected)
    for (z, x, y), data in seeded.items():
        assert data == server_tiles[("cameras", z, x, y)], (z, x, y)


def test_seed_takes_other_tile_matrix_sets(store, repo_root, tmp_path, area):
    run = onemap(store, "seed", "--tileset", "cameras", "--tms", "CGCS2000Quad", "--minzoom", "15", "--maxzoom", "15",
                 "--bbox", area[1], "--cache-dir", str(tmp_path), cwd=repo_root)
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(tmp_path / "tiles.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM tiles WHERE tms='CGCS2000Quad' AND z=15").fetchone()[0] >= 1


def test_export_mbtiles(store, repo_root, tmp_path, area, server_tiles):
    out = tmp_path / "city.mbtiles"
    run = onemap(store, "export", str(out), "--minzoom", "14", "--maxzoom", "15", "--bbox", area[1], cwd=repo_root)
    assert run.returncode == 0, run.stderr
    assert "tiles/s" in run.stdout and "tiles" in run.stderr
    with sqlite3.connect(out) as conn:
        meta = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
        rows = conn.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles").fetchall()
    assert meta["format"] == "pbf" and meta["name"]
    assert (int(meta["minzoom"]), int(meta["maxzoom"])) == ZOOMS
    bounds = [float(v) for v in meta["bounds"].split(",")]
    assert bounds == pytest.approx(area[0], abs=1e-5)
    lon, lat, zoom = (float(v) for v in meta["center"].split(","))
    assert bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3] and 14 <= zoom <= 15
    vector_layers = {layer["id"] for layer in json.loads(meta["json"])["vector_layers"]}
    # below their features, some layers carry hexagons (layers/indicators/heatmaps.yml)
    assert {v for v in vector_layers if not v.startswith("h3_")} == {layer.id for layer in readable_layers(store)}
    stored = {}
    for z, column, row, data in rows:
        assert data[:2] == b"\x1f\x8b", "MBTiles vector tiles are gzip-compressed"
        stored[(z, column, (1 << z) - 1 - row)] = gzip.decompress(data)  # MBTiles rows count from the south
    want = {(z, x, y): data for (t, z, x, y), data in server_tiles.items() if t == "onemap" and data}
    assert stored == want, "every non-empty tile, byte for byte, and no empty one"

    gdal = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(out)], capture_output=True, text=True, timeout=60)
    assert gdal.returncode == 0, gdal.stderr
    assert "format=pbf" in gdal.stdout
    gdal_layers = {line.split(": ", 1)[1] for line in gdal.stdout.splitlines() if line.startswith("Layer name: ")}
    assert gdal_layers and gdal_layers <= vector_layers
    counts = [int(line.split(": ")[1]) for line in gdal.stdout.splitlines() if line.startswith("Feature Count: ")]
    assert sum(counts) > 0


def test_export_pmtiles(store, repo_root, tmp_path, area, server_tiles):
    out = tmp_path / "cameras.pmtiles"
    run = onemap(store, "export", str(out), "--tileset", "cameras", "--minzoom", "14", "--maxzoom", "15",
                 "--bbox", area[1], cwd=repo_root)
    assert run.returncode == 0, run.stderr
    with open(out, "rb") as f:
        source = MmapSource(f)
        reader = Reader(source)
        header = reader.header()
        metadata = reader.metadata()
        stored = {(z, x, y): gzip.decompress(data) for (z, x, y), data in all_tiles(source)}
    assert header["tile_type"] == TileType.MVT and header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == ZOOMS
    assert header["min_lon_e7"] / 1e7 == pytest.approx(area[0][0], abs=1e-6)
    assert header["max_lat_e7"] / 1e7 == pytest.approx(area[0][3], abs=1e-6)
    assert [layer["id"] for layer in metadata["vector_layers"] if not layer["id"].startswith("h3_")] == ["cameras"]
    want = {(z, x, y): data for (t, z, x, y), data in server_tiles.items() if t == "cameras" and data}
    assert stored == want
    formats = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True).stdout
    if "PMTiles" in formats:  # GDAL >= 3.8
        gdal = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(out)], capture_output=True, text=True, timeout=60)
        assert gdal.returncode == 0 and "cameras" in gdal.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["export", "out.txt"], [".pmtiles or .mbtiles"]),
        (["export", "{tmp}/x.mbtiles", "--bbox", "1,2,3"], ["four numbers"]),
        (["export", "{tmp}/x.mbtiles", "--bbox", "10,50,5,40"], ["lower corner"]),
        (["export", "{tmp}/x.pmtiles", "--tileset", "nope"], ["unknown tileset", "cameras"]),
        (["export", "{tmp}/x.pmtiles", "--tileset", "population"], ["unknown tileset"]),
        (["export", "{tmp}/x.mbtiles", "--minzoom", "9", "--maxzoom", "3"], ["exceeds"]),
        (["export", "{tmp}/no/such/dir/x.mbtiles"], ["does not exist"]),
        (["seed", "--tms", "Nope", "--minzoom", "1", "--maxzoom", "2", "--cache-dir", "{tmp}"], ["tile matrix set"]),
        (["seed", "--minzoom", "x", "--maxzoom", "2", "--cache-dir", "{tmp}"], ["minzoom"]),
        (["seed", "--minzoom", "14", "--maxzoom", "14", "--cache-dir", "{tmp}", "--bbox", "1,2,1.01,2.01"], []),
    ],
    ids=["extension", "bbox-3", "bbox-order", "tileset", "unpublished", "zoom-order", "no-dir", "tms", "zoom-int", "empty-ok"],
)
def test_bad_arguments_give_a_clear_error_and_no_traceback(store, tmp_path, args, words):
    """In-process (click's runner) to keep the suite fast; the same command objects `onemap` runs."""
    from gis.cli import main

    env = {"ONEMAP_DATABASE_URL": store.settings.database.database_url,
           "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name}
    result = CliRunner().invoke(main, [a.replace("{tmp}", str(tmp_path)) for a in args], env=env)
    if not words:  # an area with no data seeds empty tiles: fine
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.stderr and "Error" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_an_export_with_nothing_in_it_fails_cleanly_and_leaves_no_file(store, repo_root, tmp_path):
    out = tmp_path / "empty.mbtiles"
    run = onemap(store, "export", str(out), "--minzoom", "14", "--maxzoom", "14", "--bbox", "-150,-60,-149.99,-59.99",
                 cwd=repo_root)
    assert run.returncode == 1 and "nothing to export" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_seed_draws_a_progress_bar_on_a_terminal(store, repo_root, tmp_path, area):
    """On a TTY the progress is click's bar (percentages redrawn in place), not log lines."""
    import pty

    primary, secondary = pty.openpty()
    env = {
        **os.environ,
        "ONEMAP_DATABASE_URL": store.settings.database.database_url,
        "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name,
        "PYTHONPATH": str(repo_root),
    }
    command = [sys.executable, "-c", "from gis.cli import main; main(prog_name='onemap')", "seed", "--tileset",
               "cameras", "--minzoom", "15", "--maxzoom", "15", "--bbox", area[1], "--cache-dir", str(tmp_path)]
    try:
        run = subprocess.run(command, stdout=subprocess.PIPE, stderr=secondary, timeout=120, cwd=repo_root, env=env)
    finally:
        os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    terminal = b"".join(chunks).decode(errors="replace")
    assert run.returncode == 0, terminal
    assert "100%" in terminal and "[" in terminal and "tiles (100%)" not in terminal
    assert b"tiles/s" in run.stdout
