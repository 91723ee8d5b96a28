"""City-wide hexagon cells are built once per data version and resolution, and reused by every
reader they look the same to: a tile of hexagons then costs no SQL at all."""

from __future__ import annotations

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
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
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
