"""Point thinning at a point layer's first levels, as the layer definitions and the tileset metadata say.

Rule (tiles.generalise, published in the tileset metadata's x-onemap-generalisation): a point layer
shown from zoom.min keeps, at zoom.min, zoom.min+1 and zoom.min+2, one point per cell of 8, 4 and
2 pixels (128, 64, 32 MVT units; cells aligned on the tile's unit grid, the buffer included), the
point with the lowest id; from zoom.min+3 on it keeps every point. From the layer files:
cameras (zoom.min 12) thin at z12-14, key_places (10) at z10-12, urban_components (15) at z15-17.

The expectation is computed here from /items (the points of the buffered tile), projected with the
textbook WebMercator formulas and snapped to the unit grid; cells holding a point whose unit
coordinate is within 1e-3 of a rounding tie are left out (projection noise could go either way).
"""

from __future__ import annotations

import math

import httpx
import pytest

from tests.tiles_support import BUFFER, EXTENT, all_items, bbox_param, decode, tile_lonlat_bounds, tile_of, to_units

CELL_PX = (8, 4, 2)
CASES = [("cameras", 0), ("cameras", 1), ("cameras", 2), ("key_places", 0), ("key_places", 2), ("urban_components", 0), ("urban_components", 1), ("urban_components", 2)]


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def densest_tile(http, layer_id: str, z: int) -> tuple[int, int]:
    """The level-z tile holding most of the layer's points: where thinning has most to do."""
    counts: dict[tuple[int, int], int] = {}
    for f in all_items(http, layer_id, limit=10000):
        lon, lat = f["geometry"]["coordinates"]
        tile = tile_of(lon, lat, z)
        counts[tile] = counts.get(tile, 0) + 1
    return max(sorted(counts), key=counts.get)


def expected_survivors(points: list[tuple[int, float, float]], z, x, y, cell: int) -> tuple[set[int], set[tuple]]:
    """(ids kept, cells whose outcome projection noise could change)."""
    best: dict[tuple[int, int], int] = {}
    unsure: set[tuple[int, int]] = set()
    lo, hi = -BUFFER, EXTENT + BUFFER
    for fid, lon, lat in points:
        u, v = to_units(lon, lat, z, x, y)
        ru, rv = round(u), round(v)  # Python rounds half to even, as the renderers do
        tie = abs(abs(u - math.floor(u)) - 0.5) < 1e-3 or abs(abs(v - math.floor(v)) - 0.5) < 1e-3
        key = (math.floor(ru / cell), math.floor(rv / cell))
        if tie:
            unsure.add(key)
        if not (lo <= ru <= hi and lo <= rv <= hi):
            if tie or min(abs(ru - lo), abs(ru - hi), abs(rv - lo), abs(rv - hi)) <= 1:
                unsure.add(key)
            continue
        if key not in best or fid < best[key]:
            best[key] = fid
    return {fid for key, fid in best.items() if key not in unsure}, unsure


@pytest.mark.parametrize(("layer_id", "step"), CASES, ids=[f"{l}+{s}" for l, s in CASES])
def test_points_are_thinned_to_the_lowest_id_per_cell(http, store, layer_id, step):
    layer = store.catalog[layer_id]
    assert layer.geometry.value == "Point"
    z = layer.zoom.min + step
    x, y = densest_tile(http, layer_id, z)
    response = http.get(f"/collections/{layer_id}/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert response.status_code == 200
    got = decode(response.content)[layer_id]
    near = all_items(http, layer_id, bbox=bbox_param(tile_lonlat_bounds(z, x, y, BUFFER + 1)))
    points = [(f["id"], *f["geometry"]["coordinates"]) for f in near]
    cell = CELL_PX[step] * 16
    want, unsure = expected_survivors(points, z, x, y, cell)
    assert len(points) > len(got), "nothing was thinned: pick a denser tile"
    assert len(unsure) <= max(2, len(want) // 20), f"{len(unsure)} undecidable cells of {len(want)}"
    sure_got = set()
    for fid, feature in got.items():
        px, py = feature["geometry"].x, feature["geometry"].y
        key = (math.floor(px / cell), math.floor(py / cell))
        if key not in unsure:
            sure_got.add(fid)
    assert sure_got == want
    cells = [(math.floor(f["geometry"].x / cell), math.floor(f["geometry"].y / cell)) for f in got.values()]
    assert len(cells) == len(set(cells)), "two points kept in one cell"


@pytest.mark.parametrize("layer_id", ["cameras", "key_places", "urban_components"])
def test_every_point_is_kept_from_the_fourth_level_on(http, store, layer_id):
    z = store.catalog[layer_id].zoom.min + 3
    x, y = densest_tile(http, layer_id, z)
    got = decode(http.get(f"/collections/{layer_id}/tiles/WebMercatorQuad/{z}/{y}/{x}").content)[layer_id]
    inside = {f["id"] for f in all_items(http, layer_id, bbox=bbox_param(tile_lonlat_bounds(z, x, y)))}
    assert inside and inside <= set(got)


def test_the_tileset_metadata_states_the_thinning_rule(http):
    doc = http.get("/collections/cameras/tiles/WebMercatorQuad").json()
    policy = doc["x-onemap-generalisation"]
    assert "8, 4, 2" in policy["pointThinning"] and "lowest id" in policy["pointThinning"]
