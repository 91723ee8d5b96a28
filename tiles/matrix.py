"""The tile matrix sets OneMap serves, and the tile arithmetic every other tile module uses.

Three sets, all described with morecantile so their OGC TileMatrixSet 2.0 documents come for free:

- `WebMercatorQuad` (EPSG:3857), zoom 0..22, the web-map default;
- `WorldCRS84Quad` (OGC:CRS84, lon/lat), 2×1 tiles at level 0;
- `CGCS2000Quad` (EPSG:4490, lat/lon axis order), the national map service's (Tianditu) `c`
  geographic grid: 2×1 tiles of 180° at level 1, origin (-180, 90), 256 px, levels 1..22, so a
  tile's (z, x, y) here is Tianditu's (TILEMATRIX, TILECOL, TILEROW).

Layer zoom ranges in `layers/*.yml` are WebMercator zoom levels; `Grid.web_zoom` maps a level of
any set to the WebMercator level of (about) the same ground resolution at the equator, so a layer
appears at the same map scale whatever set a client asks for.

Bounds here are always (minx, miny, maxx, maxy) with x = easting or longitude, y = northing or
latitude, whatever the CRS's declared axis order: the database and shapely both work x/y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import morecantile
from morecantile import TileMatrixSet

EXTENT = 4096  # MVT units across a tile
BUFFER = 64  # MVT units of context kept beyond each tile edge (lines and symbols cross edges cleanly)
TILE_PX = 256
WEB_MAX_ZOOM = 22  # the deepest layer zoom in the catalog; deeper tiles would only repeat data
OGC_PIXEL_M = 0.00028  # OGC "standardized rendering pixel size", for scale denominators
METRES_PER_DEGREE = 2 * math.pi * 6378137 / 360
WEB_LEVEL0_CELL_M = 2 * math.pi * 6378137 / TILE_PX


class TileOutOfRange(ValueError):
    """A tile index outside the set's matrices; the message says which bound it breaks."""


def _cgcs2000_quad(maxzoom: int = 22) -> TileMatrixSet:
    matrices = []
    for z in range(1, maxzoom + 1):
        cell = 360 / TILE_PX / 2**z  # degrees per pixel: 0.703125 at level 1
        matrices.append(
            {
                "id": str(z),
                "scaleDenominator": cell * METRES_PER_DEGREE / OGC_PIXEL_M,
                "cellSize": cell,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [90, -180],  # EPSG:4490 axis order is latitude, longitude
                "tileWidth": TILE_PX,
                "tileHeight": TILE_PX,
                "matrixWidth": 2**z,
                "matrixHeight": 2 ** (z - 1),
            }
        )
    return TileMatrixSet.model_validate(
        {
            "id": "CGCS2000Quad",
            "title": "CGCS2000 geographic quad (Tianditu c grid)",
            "description": (
                "Geographic tiles on EPSG:4490 laid out as the national map service's `c` matrix set: "
                "2x1 tiles of 180 degrees at level 1, origin (-180, 90), 256 px, each level halving the cell."
            ),
            "crs": {"uri": "http://www.opengis.net/def/crs/EPSG/0/4490"},
            "orderedAxes": ["Lat", "Lon"],
            "tileMatrices": matrices,
        }
    )


@dataclass(frozen=True)
class Grid:
    """One tile matrix set plus what the tile engine needs to know about it."""

    tms: TileMatrixSet
    srid: int  # the SRID tiles are cut in, in the database: 3857, or 4490 for the geographic sets
    minzoom: int
    maxzoom: int

    @property
    def id(self) -> str:
        return self.tms.id

    @property
    def geographic(self) -> bool:
        return self.srid != 3857

    @cached_property
    def _matrices(self) -> dict[int, morecantile.models.TileMatrix]:
        return {int(m.id): m for m in self.tms.tileMatrices}

    def size(self, z: int) -> tuple[int, int]:
        """(matrixWidth, matrixHeight) at level z."""
        m = self._matrices[z]
        return m.matrixWidth, m.matrixHeight

    def check(self, z: int, x: int, y: int) -> None:
        if not self.minzoom <= z <= self.maxzoom:
            raise TileOutOfRange(f"zoom {z} is outside {self.id}'s levels {self.minzoom}..{self.maxzoom}")
        width, height = self.size(z)
        if not 0 <= x < width:
            raise TileOutOfRange(f"tile column {x} is outside 0..{width - 1} at level {z} of {self.id}")
        if not 0 <= y < height:
            raise TileOutOfRange(f"tile row {y} is outside 0..{height - 1} at level {z} of {self.id}")

    def _origin_and_span(self, z: int) -> tuple[float, float, float]:
        m = self._matrices[z]
        ox, oy = (m.pointOfOrigin[1], m.pointOfOrigin[0]) if self.tms._invert_axis else m.pointOfOrigin
        return ox, oy, m.cellSize * m.tileWidth

    def bounds(self, z: int, x: int, y: int, buffer: float = 0.0) -> tuple[float, float, float, float]:
        """The tile's extent in the grid CRS (x/y order), grown by `buffer` MVT units on each side."""
        ox, oy, span = self._origin_and_span(z)
        pad = span * buffer / EXTENT
        return (ox + x * span - pad, oy - (y + 1) * span - pad, ox + (x + 1) * span + pad, oy - y * span + pad)

    def lonlat_bounds(self, z: int, x: int, y: int, buffer: float = 0.0) -> tuple[float, float, float, float]:
        """The tile's (buffered) extent in lon/lat, clamped to the world."""
        minx, miny, maxx, maxy = self.bounds(z, x, y, buffer)
        if not self.geographic:
            minx, miny = _mercator_to_lonlat(minx, miny)
            maxx, maxy = _mercator_to_lonlat(maxx, maxy)
        return max(minx, -180.0), max(miny, -90.0), min(maxx, 180.0), min(maxy, 90.0)

    def tile_range(
        self, z: int, bbox_lonlat: tuple[float, float, float, float], buffer: float = 0.0
    ) -> tuple[int, int, int, int]:
        """(xmin, ymin, xmax, ymax), inclusive: the tiles at level z whose buffered extent meets the bbox.

        Edges count as meeting (closed intervals), so a feature lying on a tile border belongs to
        both tiles, as the database's && operator would say.
        """
        minx, miny, maxx, maxy = bbox_lonlat
        if not self.geographic:
            minx, miny = _lonlat_to_mercator(minx, miny)
            maxx, maxy = _lonlat_to_mercator(maxx, maxy)
        ox, oy, span = self._origin_and_span(z)
        pad = buffer / EXTENT
        width, height = self.size(z)
        # tile i spans [i - pad, i + 1 + pad] in tile units; it meets [a, b] iff a - pad - 1 <= i <= b + pad.
        # The epsilon errs towards one tile too many: a spare invalidation is harmless, a missed one is not.
        x0 = math.ceil((minx - ox) / span - pad - 1 - 1e-9)
        x1 = math.floor((maxx - ox) / span + pad + 1e-9)
        y0 = math.ceil((oy - maxy) / span - pad - 1 - 1e-9)
        y1 = math.floor((oy - miny) / span + pad + 1e-9)
        return max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)

    def tiles_touching(self, bbox_lonlat: tuple[float, float, float, float], buffer: float = 0.0):
        """Every (z, x, y) at every level whose buffered extent meets the bbox, level by level."""
        for z in range(self.minzoom, self.maxzoom + 1):
            x0, y0, x1, y1 = self.tile_range(z, bbox_lonlat, buffer)
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    yield z, x, y

    def web_zoom(self, z: int) -> int:
        """The WebMercator level whose equatorial ground resolution is nearest to level z's."""
        m = self._matrices[z]
        metres = m.cellSize * (METRES_PER_DEGREE if self.geographic else 1.0)
        return round(math.log2(WEB_LEVEL0_CELL_M / metres))

    def zoom_range_for(self, web_min: int, web_max: int) -> tuple[int, int] | None:
        """The levels of this set that show a layer visible at WebMercator levels web_min..web_max."""
        levels = [z for z in range(self.minzoom, self.maxzoom + 1) if web_min <= self.web_zoom(z) <= web_max]
        return (levels[0], levels[-1]) if levels else None

    def units_per_pixel(self, z: int) -> float:
        """Ground size of one MVT unit at level z, in the grid CRS's units."""
        _, _, span = self._origin_and_span(z)
        return span / EXTENT


def _mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    r = 6378137.0
    return math.degrees(x / r), math.degrees(2 * math.atan(math.exp(y / r)) - math.pi / 2)


def _lonlat_to_mercator(lon: float, lat: float) -> tuple[float, float]:
    r = 6378137.0
    lat = max(min(lat, 89.9999999), -89.9999999)
    return math.radians(lon) * r, r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def _build_grids() -> dict[str, Grid]:
    web = morecantile.tms.get("WebMercatorQuad")
    crs84 = morecantile.tms.get("WorldCRS84Quad")
    cgcs = _cgcs2000_quad()
    return {
        "WebMercatorQuad": Grid(web, 3857, 0, WEB_MAX_ZOOM),
        "WorldCRS84Quad": Grid(crs84, 4490, 0, WEB_MAX_ZOOM - 1),
        "CGCS2000Quad": Grid(cgcs, 4490, cgcs.minzoom, cgcs.maxzoom),
    }


GRIDS: dict[str, Grid] = _build_grids()


def grid(tms_id: str) -> Grid:
    """The grid by its id; KeyError lists what exists."""
    try:
        return GRIDS[tms_id]
    except KeyError:
        raise KeyError(f"unknown tile matrix set {tms_id!r}; known: {', '.join(GRIDS)}") from None
