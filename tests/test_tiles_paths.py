"""Both generation paths give the same tile: ST_AsMVT in PostGIS and shapely + mapbox-vector-tile.

The demo city is deterministic, so the PostGIS store and the GeoPackage store hold the same
features with the same ids. The same tile is rendered by render_postgis on the one and
render_python on the other (through TileEngine, which picks the path by backend) and decoded:
same layers, same ids, same properties; points at the same unit, lines and polygons within a
unit by Hausdorff distance (GEOS versions may place a clipped vertex differently). Tiles are
picked across every layer's zoom range, thinning and simplifying levels included, in all three
tile matrix sets.
"""

from __future__ import annotations

import math

import pytest
import shapely

from tests.tiles_support import cases, decode
from tiles import render_postgis, render_python
from tiles.engine import TileEngine
from tiles.matrix import GRIDS

STATS = {"tiles": 0, "features": 0}


@pytest.fixture(scope="module")
def engines(built_stores, postgres_url):
    pg, _ = built_stores("postgis")
    gp, _ = built_stores("geopackage")
    assert pg.postgis and not gp.postgis
    yield TileEngine(pg), TileEngine(gp)
    print(f"\nrender_postgis vs render_python: {STATS['tiles']} tiles, {STATS['features']} features compared")


def render(engine: TileEngine, tileset, tms, z, x, y) -> bytes:
    plan = engine.plan(tileset, GRIDS[tms], z, x, y)
    with engine.store.engine.connect() as conn:
        if engine.store.postgis:
            result = render_postgis.render(conn, engine.store.schema, plan, {})
        else:
            result = render_python.render(conn, engine.store.backend, plan, {})
    return result.data


def test_both_paths_render_the_same_features(engines):
    pg, gp = engines
    compared_tiles = 0
    for tileset, tms, z, x, y in cases(gp.store):
        a = decode(render(pg, tileset, tms, z, x, y))
        b = decode(render(gp, tileset, tms, z, x, y))
        where = f"{tileset} {tms} {z}/{x}/{y}"
        assert set(a) == set(b), where
        for layer in a:
            assert set(a[layer]) == set(b[layer]), (where, layer, sorted(set(a[layer]) ^ set(b[layer]))[:10])
            for fid, fa in a[layer].items():
                fb = b[layer][fid]
                assert fa["properties"] == fb["properties"], (where, layer, fid)
                ga, gb = fa["geometry"], fb["geometry"]
                assert ga.geom_type.removeprefix("Multi") == gb.geom_type.removeprefix("Multi"), (where, fid)
                distance = shapely.hausdorff_distance(ga, gb)
                assert distance <= (0 if ga.geom_type == "Point" else 1.0) + 1e-9, (where, layer, fid, distance)
                if ga.geom_type.endswith("Polygon"):
                    assert math.isclose(ga.area, gb.area, rel_tol=0.01, abs_tol=8), (where, fid, ga.area, gb.area)
            STATS["features"] += len(a[layer])
        compared_tiles += 1
    STATS["tiles"] += compared_tiles
    assert compared_tiles >= 30 and STATS["features"] > 1000
