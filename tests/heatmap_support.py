"""Helpers for the heatmap tests: read every hexagon of a heatmap over the city, by cell id.

Tiles are decoded with mapbox_vector_tile and addressed with the textbook WebMercator formulas of
tests/tiles_support.py, never with code from tiles/.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import h3
import mapbox_vector_tile

from tests.tiles_support import tile_of

MARGIN_DEG = 0.08  # hexagons reach a few cell edges beyond the features they count


def city_tiles(bbox, z: int) -> list[tuple[int, int]]:
    minx, miny, maxx, maxy = bbox
    x0, y0 = tile_of(minx - MARGIN_DEG, maxy + MARGIN_DEG, z)
    x1, y1 = tile_of(maxx + MARGIN_DEG, miny - MARGIN_DEG, z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def mvt_id(cell: str) -> int:
    """A hexagon's MVT id: the H3 index less its 8 constant top bits and its last 3 digits
    (always 7 at resolution 12 and coarser), which JavaScript's doubles hold exactly."""
    return (h3.str_to_int(cell) % 2**56) // 2**9


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data) if data else {}


def hexagons(http, path: str, layer: str, bbox, z: int, **params) -> dict[str, dict]:
    """Every hexagon of `layer` in the tiles at level z covering the city: cell -> properties.

    A hexagon drawn in several tiles must carry the same properties in each (whole-cell counts)."""
    tiles = city_tiles(bbox, z)

    def fetch(xy):
        x, y = xy
        response = http.get(f"{path}/WebMercatorQuad/{z}/{y}/{x}", params=params)
        assert response.status_code in (200, 204), (xy, response.status_code, response.text[:300])
        return decode(response.content).get(layer, {"features": []})["features"]

    with ThreadPoolExecutor(4) as pool:
        found: dict[str, dict] = {}
        for features in pool.map(fetch, tiles):
            for feature in features:
                props = feature["properties"]
                cell = props["cell"]
                assert feature["id"] == mvt_id(cell)
                if cell in found:
                    assert found[cell] == props, f"cell {cell} differs between tiles"
                found[cell] = props
    return found


def resolution_of(cells) -> int:
    resolutions = {h3.get_resolution(c) for c in cells}
    assert len(resolutions) == 1, resolutions
    return resolutions.pop()


def density(value: float, cell: str) -> float:
    return value / h3.cell_area(cell, "km^2")


def close(a: float, b: float, rel: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
