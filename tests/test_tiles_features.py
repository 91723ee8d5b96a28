"""Tiles hold what the Features API holds: same features, same ids, same attributes, same places.

For tiles across z13-z18 over the demo city (each centred on a real feature, so none is empty by
construction) on buildings, cameras, key_places, urban_components and the dataset tileset `/tiles`:

- every feature /collections/{id}/items returns for the tile's bbox (following next links) is in the
  tile, with the same id and the same public attributes (the tiles carry every public attribute at
  every level they show a layer; secret ones never);
- nothing in the tile is absent from /items for the tile's bbox grown by the 64-unit buffer (plus
  one unit of rounding): a feature that only meets the buffer may be in the tile, nothing else;
- each feature sits where /items puts it: points within a unit; polygons snapped to the
  generalisation grid (8 units, half a pixel, below the layer's zoom.max - 2; 1 unit above): every
  tile vertex within half a grid diagonal (+1) of the /items geometry, and every point of the
  /items geometry inside the tile within 2.5 grid cells (+1) of the tile's (repair may drop a
  sliver thinner than a cell).

The exceptions the layer definitions imply (tiles.generalise, stated in the tileset metadata):
point layers are thinned in their first three levels (cameras z12-14, key_places z10-12,
urban_components z15-17, population z14-16), so this module compares point layers only above those
(urban_components at z18, outside z12-z16); test_tiles_thinning.py checks the thinning itself.
Polygons smaller than the generalisation grid may collapse away; any such miss must be that small.
"""

from __future__ import annotations

import httpx
import pytest
import shapely

from tests.oracle import read_layer, readable_layers
from tests.tiles_support import (
    BUFFER,
    EXTENT,
    TILE_MEDIA,
    all_items,
    bbox_param,
    decode,
    geometry_to_units,
    normalised,
    tile_lonlat_bounds,
    tile_of,
)

THIN_LEVELS = 3  # point layers: one per 8, 4, 2 px cell in their first three levels
# (tileset, zoom, how many tiles): 36 tiles
CASES = [
    ("buildings", 13, 3),
    ("buildings", 14, 3),
    ("buildings", 15, 3),
    ("buildings", 16, 3),
    ("cameras", 15, 3),
    ("cameras", 16, 3),
    ("key_places", 13, 2),
    ("key_places", 14, 2),
    ("key_places", 15, 2),
    ("key_places", 16, 2),
    ("urban_components", 18, 4),
    ("onemap", 16, 3),
    ("onemap", 18, 3),
]
STATS = {"tiles": 0, "features": 0}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\ntiles vs features: {STATS['tiles']} tiles, {STATS['features']} tile features compared")


_ROWS: dict = {}


def rows(store, layer_id):
    key = (id(store), layer_id)
    if key not in _ROWS:
        _ROWS[key] = read_layer(store, layer_id)
    return _ROWS[key]


def pick_tiles(store, layer_id: str, z: int, n: int) -> list[tuple[int, int]]:
    """n distinct tiles at level z, each holding a feature picked evenly through the layer by id."""
    layer_rows = rows(store, layer_id)
    assert layer_rows, f"the demo city has no {layer_id}"
    picked: list[tuple[int, int]] = []
    step = max(1, len(layer_rows) // (n * 3))
    for row in layer_rows[step // 2 :: step]:
        p = row.geom.representative_point()
        tile = tile_of(p.x, p.y, z)
        if tile not in picked:
            picked.append(tile)
        if len(picked) == n:
            break
    return picked


def thinned(layer, z: int) -> bool:
    return layer.geometry.value == "Point" and z < layer.zoom.min + THIN_LEVELS


def grid_units(layer, z: int) -> float:
    if layer.geometry.value == "Point":
        return 1.0
    return 8.0 if z < layer.zoom.max - 2 else 1.0


def directed(a, b) -> float:
    """The farthest any point of a (vertices, and edges every unit) lies from geometry b."""
    coords = shapely.get_coordinates(shapely.segmentize(a, 1.0))
    return float(shapely.distance(shapely.points(coords), b).max()) if len(coords) else 0.0


def compare_layer(http, store, layer_id: str, z: int, x: int, y: int, in_tile: dict[int, dict]) -> int:
    """Checks one layer of one tile against /items; returns how many features were compared."""
    layer = store.catalog[layer_id]
    inner = {f["id"]: f for f in all_items(http, layer_id, bbox=bbox_param(tile_lonlat_bounds(z, x, y)))}
    outer = {
        f["id"]: f for f in all_items(http, layer_id, bbox=bbox_param(tile_lonlat_bounds(z, x, y, BUFFER + 1)))
    }
    assert set(inner) <= set(outer)
    strays = sorted(set(in_tile) - set(outer))
    assert not strays, f"{layer_id} z{z}/{x}/{y}: tile features {strays[:10]} are not near the tile in /items"
    tolerance = grid_units(layer, z)
    if not thinned(layer, z):
        for fid in sorted(set(inner) - set(in_tile)):
            shape = geometry_to_units(shapely.geometry.shape(inner[fid]["geometry"]), z, x, y)
            minx, miny, maxx, maxy = shape.bounds
            assert layer.geometry.value != "Point" and max(maxx - minx, maxy - miny) < 2 * tolerance, (
                f"{layer_id} {fid} meets tile z{z}/{x}/{y} in /items but is missing from the tile "
                f"(extent {maxx - minx:.1f} x {maxy - miny:.1f} units)"
            )
    # what the anonymous caller sees: never a secret; personal classes only masked, exactly as
    # /items has them (compared below; tests/test_security_masking.py checks the masking itself)
    public = {a.name for a in layer.attributes if a.sensitivity.value != "secret"}
    tile_proper = shapely.box(0, 0, EXTENT, EXTENT)
    for fid, feature in in_tile.items():
        expected = outer[fid]
        assert set(feature["properties"]) <= public, f"{layer_id} {fid}: non-public attributes in the tile"
        assert normalised(feature["properties"]) == normalised(expected["properties"]), (layer_id, fid)
        want = geometry_to_units(shapely.geometry.shape(expected["geometry"]), z, x, y)
        got = feature["geometry"]
        if layer.geometry.value == "Point":
            assert got.distance(want) <= 1.0, (layer_id, fid, got.wkt, want.wkt)
        else:
            # Snapping moves a vertex by at most half a grid diagonal, and a point of a snapped edge
            # no further from the original edge; cut points round to the unit grid. Repair after
            # snapping may drop a part thinner than a grid cell. Both directions, and the tile's
            # cut at the buffer edge (a shallow edge cut after snapping may end far along it)
            # excused by comparing /items' geometry within the tile proper only.
            snap = tolerance * 2**0.5 / 2 + 1
            off = directed(got, want)
            assert off <= snap, f"{layer_id} {fid}: a tile vertex is {off:.1f} units off in z{z}/{x}/{y}"
            missing = directed(shapely.make_valid(want).intersection(tile_proper), got)
            assert missing <= 2.5 * tolerance + 1, f"{layer_id} {fid}: {missing:.1f} units of it lost in z{z}/{x}/{y}"
    return len(in_tile)


@pytest.mark.parametrize(("tileset", "z", "n"), CASES, ids=[f"{t}-z{z}" for t, z, _ in CASES])
def test_tiles_hold_exactly_the_features_of_the_features_api(http, store, tileset, z, n):
    dataset = tileset == "onemap"
    sample_layer = "cameras" if dataset else tileset
    for x, y in pick_tiles(store, sample_layer, z, n):
        path = f"/tiles/WebMercatorQuad/{z}/{y}/{x}" if dataset else f"/collections/{tileset}/tiles/WebMercatorQuad/{z}/{y}/{x}"
        response = http.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert response.headers["content-type"] == TILE_MEDIA
        tile = decode(response.content)
        if dataset:
            shown = {layer.id for layer in readable_layers(store) if layer.zoom.min <= z <= layer.zoom.max}
            assert set(tile) <= shown, f"layers outside their zoom range in /tiles z{z}: {set(tile) - shown}"
            layers = sorted(shown)
        else:
            assert set(tile) <= {tileset}
            layers = [tileset]
        compared = 0
        for layer_id in layers:
            compared += compare_layer(http, store, layer_id, z, x, y, tile.get(layer_id, {}))
        STATS["tiles"] += 1
        STATS["features"] += compared
        assert compared > 0, f"{path} compared no feature"


def test_population_is_never_in_tiles(http, store):
    """The population register is aggregate-only for the public: no collection tiles, no layer in /tiles."""
    assert "population" not in {layer.id for layer in readable_layers(store)}
    row = rows(store, "population")[0]
    x, y = tile_of(row.geom.x, row.geom.y, 16)
    assert http.get(f"/collections/population/tiles/WebMercatorQuad/16/{y}/{x}").status_code == 404
    response = http.get(f"/tiles/WebMercatorQuad/16/{y}/{x}")
    assert "population" not in decode(response.content if response.status_code == 200 else b"")
