"""City-wide hexagon cells are built once per data version and resolution, and reused by every
reader they look the same to: a tile of hexagons then costs no SQL at all."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event

from gis.security.principal import current
from tests.conftest import settings_for
from tests.tiles_support import tile_of


@pytest.fixture(scope="module")
def service(store):
    from tiles.api import TileService

    service = TileService(store, settings_for(store.settings.database.database_url), cache_dir=None)
    yield service
    service.engine.close()


def statements_while(engines, fn):
    """The statements `fn` caused: the calling thread's and the hexagon-cell builders' (a render may
    wait on one). The store is shared by the session, and another test's server still polling it
    for data versions from its own threads (seen once in a full run) is not this render's doing."""
    seen = []
    caller = threading.current_thread()

    def record(conn, cursor, statement, parameters, context, executemany):
        thread = threading.current_thread()
        if thread is caller or thread.name.startswith("heat-cells"):
            seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        result = fn()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    return result, seen


@pytest.mark.parametrize("indicator, layer", [("floor_area", "buildings"), ("residents", "population")])
def test_a_tile_of_warmed_hexagons_runs_no_statement_whatever_the_readers_access(store, service, indicator, layer):
    """The public reads buildings one by one (individual access), and floor-area cells are never
    suppressed: its tiles must read the cells warmed without that access, not build them again."""
    from tiles.matrix import GRIDS

    heatmap = service.engine.tileset(f"h3_{indicator}").heat[0]
    grid, z = GRIDS["WebMercatorQuad"], 11
    res = heatmap.resolution(grid.web_zoom(z))
    version = service.engine.layer_versions[heatmap.source]
    service.engine.heat_tiles.warm(heatmap, res, version)
    assert current().individual_access(layer) == (layer == "buildings")
    minx, miny, maxx, maxy = store.layer_meta(layer).bbox
    x, y = tile_of((minx + maxx) / 2, (miny + maxy) / 2, z)
    engines = {id(e): e for e in (store.engine, service.engine.db)}.values()  # one engine on the GeoPackage
    rendered, ran = statements_while(engines, lambda: service.engine.render(service.engine.plan(heatmap.id, grid, z, x, y)))
    assert rendered.counts[heatmap.id] > 0
    assert ran == []


def test_after_a_write_the_cells_are_rebuilt_ahead_of_the_first_tile(store, service):
    """A write from anywhere moves the layer's version; the next refresh rebuilds, in the background,
    the cells tiles were drawing, so the first tile after the write runs no statement and shows the
    write (the same bytes as counting that tile in SQL)."""
    from sqlalchemy import text

    from tiles.matrix import GRIDS

    heatmap = service.engine.tileset("h3_cameras_offline").heat[0]
    grid, z = GRIDS["WebMercatorQuad"], 11
    res = heatmap.resolution(grid.web_zoom(z))
    service.refresh()
    service.engine.heat_tiles.warm(heatmap, res, service.engine.layer_versions["cameras"])
    table = f'"{store.schema}".cameras' if store.postgis else "cameras"
    minx, miny, maxx, maxy = store.layer_meta("cameras").bbox
    x, y = tile_of((minx + maxx) / 2, (miny + maxy) / 2, z)
    with store.engine.begin() as conn:
        # an online camera goes offline: the layer's version moves, and one hexagon's count
        camera, status = conn.execute(text(
            f"SELECT id, status FROM {table} WHERE status <> 'offline' ORDER BY id LIMIT 1"
        )).one()
        conn.execute(text(f"UPDATE {table} SET status = 'offline' WHERE id = :i"), {"i": camera})
    engines = {id(e): e for e in (store.engine, service.engine.db)}.values()
    try:
        service.refresh()  # as the app's poller does every second
        service.engine.heat_tiles.drain()
        plan = service.engine.plan(heatmap.id, grid, z, x, y)
        memory, ran = statements_while(engines, lambda: service.engine.render(plan))
        assert ran == []
        service.engine.heat_tiles.in_memory = False
        try:
            assert memory.data == service.engine.render(plan).data  # counted in SQL, after the write
        finally:
            service.engine.heat_tiles.in_memory = True
    finally:
        with store.engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET status = :s WHERE id = :i"), {"s": status, "i": camera})
        service.refresh()
        service.engine.heat_tiles.drain()


def test_tiles_asked_at_once_on_a_cold_resolution_draw_the_city_once(store, service, monkeypatch):
    """A cold server is asked for many hexagon tiles at once: they wait for one drawing of the
    city's cells at that resolution instead of each drawing it again side by side."""
    import threading

    from tiles.heatmap import render as heatmap_render
    from tiles.matrix import GRIDS

    heatmap = service.engine.tileset("h3_floor_area").heat[0]
    grid = GRIDS["WebMercatorQuad"]
    drawn = {res for (key, _geo) in service.engine.heat_tiles._drawables.built for res in [key[1]]}
    z = next(z for z in range(heatmap.layer.zoom.min, heatmap.layer.zoom.max + 1)
             if heatmap.resolution(grid.web_zoom(z)) not in drawn)
    calls = []
    real = heatmap_render.drawable

    def counted(rows, geographic):
        calls.append(len(rows.cell))
        return real(rows, geographic)

    monkeypatch.setattr(heatmap_render, "drawable", counted)
    minx, miny, maxx, maxy = store.layer_meta("buildings").bbox
    x, y = tile_of((minx + maxx) / 2, (miny + maxy) / 2, z)
    tiles = [(x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    start, results = threading.Barrier(len(tiles)), {}

    def render(tx, ty):
        start.wait()
        results[tx, ty] = service.engine.render(service.engine.plan(heatmap.id, grid, z, tx, ty))

    threads = [threading.Thread(target=render, args=t) for t in tiles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == len(tiles)
    assert sum(r.counts.get(heatmap.id, 0) for r in results.values()) > 0
    assert len(calls) == 1


def test_workers_sharing_a_cache_directory_build_the_city_cells_once(store, tmp_path):
    """Two tile services over one cache directory, as two worker processes of one host: the second
    draws its hexagons from the cells the first built (read from the shared file, no GROUP BY), and
    its tile is byte for byte the first one's. A newer data version builds anew and replaces the file."""
    from tiles.api import TileService
    from tiles.matrix import GRIDS

    settings = settings_for(store.settings.database.database_url)
    first, second = (TileService(store, settings, cache_dir=tmp_path) for _ in range(2))
    try:
        heatmap = first.engine.tileset("h3_floor_area").heat[0]
        grid, z = GRIDS["WebMercatorQuad"], 11
        minx, miny, maxx, maxy = store.layer_meta("buildings").bbox
        x, y = tile_of((minx + maxx) / 2, (miny + maxy) / 2, z)
        engines = {id(e): e for e in (store.engine, first.engine.db, second.engine.db)}.values()
        built, ran_first = statements_while(engines, lambda: first.engine.render(first.engine.plan(heatmap.id, grid, z, x, y)))
        assert built.counts[heatmap.id] > 0 and any("GROUP BY" in s for s in ran_first)
        read, ran_second = statements_while(engines, lambda: second.engine.render(second.engine.plan(heatmap.id, grid, z, x, y)))
        assert not any("GROUP BY" in s for s in ran_second), "the second worker read the cells, not the layer"
        assert second.engine.heat_tiles.cells.shared.loaded == 1
        assert read.data == built.data
        files = sorted(p.name for p in (tmp_path / "cells").glob("*.npz"))
        assert len(files) == 1
        newer = first.engine.layer_versions["buildings"] + 1  # as after a write: that version's cells
        first.engine.heat_tiles.cells.city(heatmap, heatmap.resolution(grid.web_zoom(z)), newer)
        after = sorted(p.name for p in (tmp_path / "cells").glob("*.npz"))
        assert len(after) == 1 and after != files, "the newer version's file replaces the older one"
    finally:
        for s in (first, second):
            s.close()
