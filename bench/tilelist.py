"""The one fixed, shuffled tile list every server walks, and its URL form per server.

Every WebMercatorQuad tile from zoom 10 to 16 over the city that holds at least one feature of the
layer (a point, or a polygon's centroid), for each benchmarked layer, shuffled once with a fixed
seed. Empty tiles are left out: the city's extent is mostly countryside, and a list of every tile
in it is 3/4 empty z16 tiles, which measure nothing but HTTP overhead. Tiles are distinct, so on a
server with an empty cache each request is a miss. Written one path per line for wrk (walk.lua).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

ZOOMS = range(10, 17)
SEED = 20261125


@dataclass(frozen=True)
class Tile:
    layer: str
    z: int
    x: int
    y: int


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tiles_over(bbox: tuple[float, float, float, float], zooms=ZOOMS) -> list[tuple[int, int, int]]:
    minx, miny, maxx, maxy = bbox
    out = []
    for z in zooms:
        x0, y0 = _tile_xy(minx, maxy, z)  # north-west corner: smallest y
        x1, y1 = _tile_xy(maxx, miny, z)
        out += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return out


_HALF = 20037508.342789244  # half the WebMercator world, metres

_OCCUPIED = """
WITH p AS (SELECT ST_X(c) AS x, ST_Y(c) AS y FROM (SELECT ST_PointOnSurface(geom_3857) AS c FROM "{schema}"."{table}") s)
SELECT DISTINCT z, floor((x + {h}) / ({w} / 2 ^ z))::int AS tx, floor(({h} - y) / ({w} / 2 ^ z))::int AS ty
FROM p, generate_series({z0}, {z1}) AS z
"""


def occupied(conn, layer: str, schema: str = "onemap", zooms=ZOOMS) -> list[tuple[int, int, int]]:
    """Tiles (z, x, y) holding at least one feature of the layer (its point on surface)."""
    sql = _OCCUPIED.format(schema=schema, table=layer, h=_HALF, w=2 * _HALF, z0=min(zooms), z1=max(zooms))
    return sorted(tuple(r) for r in conn.execute(sql).fetchall())


def tile_list(conn, layers: list[str], seed: int = SEED, schema: str = "onemap") -> list[Tile]:
    tiles = [Tile(layer, z, x, y) for layer in layers for z, x, y in occupied(conn, layer, schema)]
    random.Random(seed).shuffle(tiles)
    return tiles


# URL path of one tile on each server (the same tile, each server's route)
def onemap_path(t: Tile) -> str:
    return f"/collections/{t.layer}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}"


def tipg_path(t: Tile, schema: str = "onemap") -> str:
    # tipg would otherwise cut the table's first geometry column (geom, EPSG:4490) and transform
    # every row; geom_3857 is the stored WebMercator copy OneMap and the raw bound read
    return f"/collections/{schema}.{t.layer}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}?geom-column=geom_3857"


def pygeoapi_path(t: Tile) -> str:
    return f"/collections/{t.layer}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}?f=mvt"


def write_paths(path: Path, tiles: list[Tile], form) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(form(t) + "\n" for t in tiles))
    return path
