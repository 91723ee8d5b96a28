"""Tile matrix arithmetic, checked level by level against independent formulas and morecantile.

Expectations are computed here from first principles (powers of two, the spherical Mercator
formula, Tianditu's published layout), never by calling the code under test twice.
"""

from __future__ import annotations

import math
import random

import morecantile
import pytest
from pyproj import Transformer

from tiles.matrix import BUFFER, EXTENT, GRIDS, TileOutOfRange, grid

R = 6378137.0
HALF_WORLD = math.pi * R
TO_MERC = Transformer.from_crs(4490, 3857, always_xy=True)


def test_the_three_sets_are_served():
    assert list(GRIDS) == ["WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"]
    with pytest.raises(KeyError, match="known: WebMercatorQuad"):
        grid("GoogleCRS84Quad")


@pytest.mark.parametrize("z", range(0, 23))
def test_web_mercator_levels(z):
    g = GRIDS["WebMercatorQuad"]
    n = 2**z
    assert g.size(z) == (n, n)
    span = 2 * HALF_WORLD / n
    for x, y in {(0, 0), (n - 1, n - 1), (n // 2, n // 3), (n // 5, n - 1)}:
        minx, miny, maxx, maxy = g.bounds(z, x, y)
        assert minx == pytest.approx(-HALF_WORLD + x * span, abs=1e-6)
        assert maxy == pytest.approx(HALF_WORLD - y * span, abs=1e-6)
        assert maxx - minx == pytest.approx(span, abs=1e-6)
        assert maxy - miny == pytest.approx(span, abs=1e-6)
        assert g.bounds(z, x, y) == pytest.approx(tuple(morecantile.tms.get("WebMercatorQuad").xy_bounds(x, y, z)))
    assert g.units_per_pixel(z) == pytest.approx(span / EXTENT)
    assert g.web_zoom(z) == z


@pytest.mark.parametrize("z", range(0, 22))
def test_world_crs84_levels(z):
    g = GRIDS["WorldCRS84Quad"]
    assert g.size(z) == (2 ** (z + 1), 2**z)
    span = 180 / 2**z
    minx, miny, maxx, maxy = g.bounds(z, 1, 0)
    assert (minx, maxy, maxx - minx, maxy - miny) == pytest.approx((-180 + span, 90, span, span))
    # 0.703125 deg/px at level 0 is WebMercator's level-1 ground resolution at the equator
    assert g.web_zoom(z) == z + 1


@pytest.mark.parametrize("z", range(1, 23))
def test_cgcs2000_quad_is_tiandtu_c_grid(z):
    g = GRIDS["CGCS2000Quad"]
    assert g.size(z) == (2**z, 2 ** (z - 1))  # 2 x 1 at level 1, origin (-180, 90)
    deg = 360 / 2**z
    for x, y in {(0, 0), (2**z - 1, 2 ** (z - 1) - 1), (2**z // 3, 2 ** (z - 1) // 2)}:
        assert g.bounds(z, x, y) == pytest.approx((-180 + x * deg, 90 - (y + 1) * deg, -180 + (x + 1) * deg, 90 - y * deg))
    m = g.tms.matrix(z)
    assert m.cellSize == pytest.approx(0.703125 / 2 ** (z - 1))
    assert m.tileWidth == m.tileHeight == 256
    assert g.web_zoom(z) == z  # Tianditu levels match web-map levels in scale


def test_cgcs2000_quad_document():
    g = GRIDS["CGCS2000Quad"]
    assert g.minzoom == 1 and g.maxzoom == 22
    assert g.tms.orderedAxes == ["Lat", "Lon"]
    assert str(g.tms.crs.root.uri) == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert list(g.tms.matrix(1).pointOfOrigin) == [90, -180]  # lat, lon: EPSG:4490's axis order
    # a known Tianditu tile: Tiananmen (116.3975 E, 39.9087 N) at level 10 is column 843, row 142
    assert g.tile_range(10, (116.3975, 39.9087, 116.3975, 39.9087)) == (843, 142, 843, 142)
    assert g.tms.tile(116.3975, 39.9087, 10) == morecantile.Tile(843, 142, 10)


@pytest.mark.parametrize("tms", list(GRIDS))
def test_check_rejects_outside_indexes(tms):
    g = GRIDS[tms]
    z = g.minzoom + 2
    w, h = g.size(z)
    g.check(z, w - 1, h - 1)
    for bad in [(z, w, 0), (z, 0, h), (z, -1, 0), (z, 0, -1), (g.maxzoom + 1, 0, 0), (g.minzoom - 1, 0, 0)]:
        with pytest.raises(TileOutOfRange):
            g.check(*bad)


def _brute_touching(g, z, bbox, buffer):
    """Every tile of the level, tested one by one against the bbox (closed intervals)."""
    minx, miny, maxx, maxy = bbox
    if not g.geographic:
        (minx, maxx), (miny, maxy) = TO_MERC.transform([minx, maxx], [miny, maxy])
    w, h = g.size(z)
    hits = set()
    for x in range(w):
        for y in range(h):
            bx0, by0, bx1, by1 = g.bounds(z, x, y, buffer)
            if bx0 <= maxx and bx1 >= minx and by0 <= maxy and by1 >= miny:
                hits.add((x, y))
    return hits


@pytest.mark.parametrize("tms", list(GRIDS))
@pytest.mark.parametrize("buffer", [0, BUFFER + 1])
def test_tile_range_matches_brute_force(tms, buffer):
    g = GRIDS[tms]
    rng = random.Random(tms + str(buffer))
    for _ in range(60):
        z = rng.randint(g.minzoom, min(g.minzoom + 7, g.maxzoom))
        lon, lat = rng.uniform(-179, 179), rng.uniform(-80, 80)
        bbox = (lon, lat, lon + rng.uniform(0, 5) * rng.random() ** 4, lat + rng.uniform(0, 3) * rng.random() ** 4)
        x0, y0, x1, y1 = g.tile_range(z, bbox, buffer)
        got = {(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
        expected = _brute_touching(g, z, bbox, buffer)
        # the range may err by one tile outward (harmless for invalidation), never inward
        assert expected <= got
        assert len(got) <= (max(x for x, _ in expected) - min(x for x, _ in expected) + 3) * (
            max(y for _, y in expected) - min(y for _, y in expected) + 3
        )


def test_tile_range_on_an_edge_touches_both_tiles():
    g = GRIDS["CGCS2000Quad"]
    # longitude 0 is the edge between columns 0 and 1 at level 1
    assert g.tile_range(1, (0.0, 10.0, 0.0, 10.0)) == (0, 0, 1, 0)


def test_tiles_touching_walks_every_level():
    g = GRIDS["WebMercatorQuad"]
    bbox = (117.2, 31.8, 117.21, 31.81)
    tiles = list(g.tiles_touching(bbox))
    assert {z for z, _, _ in tiles} == set(range(0, 23))
    for z, x, y in tiles:
        minx, miny, maxx, maxy = g.lonlat_bounds(z, x, y)
        assert minx <= 117.21 + 1e-9 and maxx >= 117.2 - 1e-9 and miny <= 31.81 + 1e-9 and maxy >= 31.8 - 1e-9


@pytest.mark.parametrize("z", [0, 5, 12, 18, 22])
def test_lonlat_bounds_of_web_tiles_invert_mercator(z):
    g = GRIDS["WebMercatorQuad"]
    n = 2**z
    x, y = n // 3, n // 7
    minx, miny, maxx, maxy = g.lonlat_bounds(z, x, y)
    # the slippy-map formulas
    lon = lambda i: i / n * 360 - 180  # noqa: E731
    lat = lambda j: math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * j / n))))  # noqa: E731
    assert (minx, miny, maxx, maxy) == pytest.approx((lon(x), lat(y + 1), lon(x + 1), lat(y)), abs=1e-9)


@pytest.mark.parametrize("tms", list(GRIDS))
def test_zoom_range_for_layers(tms):
    g = GRIDS[tms]
    lo, hi = g.zoom_range_for(12, 22)
    assert g.web_zoom(lo) == 12 or (lo == g.minzoom and g.web_zoom(lo) >= 12)
    assert g.web_zoom(hi) <= 22
    assert all(12 <= g.web_zoom(z) <= 22 for z in range(lo, hi + 1))
    assert g.zoom_range_for(30, 31) is None


def test_buffered_bounds_grow_by_buffer_units():
    g = GRIDS["WebMercatorQuad"]
    plain = g.bounds(10, 500, 300)
    padded = g.bounds(10, 500, 300, BUFFER)
    unit = (plain[2] - plain[0]) / EXTENT
    assert padded == pytest.approx(
        (plain[0] - BUFFER * unit, plain[1] - BUFFER * unit, plain[2] + BUFFER * unit, plain[3] + BUFFER * unit)
    )
