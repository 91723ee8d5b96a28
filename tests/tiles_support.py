"""Helpers shared by the tile tests (tests/test_tiles_*.py), independent of the tile engine.

Tile geometry here is computed from the textbook WebMercator formulas (spherical, R = 6378137),
not from tiles.matrix; features come from the Features API or tests/oracle.py; tiles are decoded
with mapbox_vector_tile (Python), GDAL or MapLibre's decoder, never with code from tiles/.
"""

from __future__ import annotations

import datetime as dt
import math

import mapbox_vector_tile
import shapely

from tests.oapif import all_items  # noqa: F401  (tile tests compare tiles with what it returns)
from tests.oracle import read_layer

R = 6378137.0
WORLD = 2 * math.pi * R
EXTENT = 4096
BUFFER = 64  # documented in the tileset metadata (x-onemap-generalisation) and tiles.matrix
TILE_MEDIA = "application/vnd.mapbox-vector-tile"
PROBLEM_MEDIA = "application/problem+json"


def merc(lon: float, lat: float) -> tuple[float, float]:
    return math.radians(lon) * R, R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def unmerc(x: float, y: float) -> tuple[float, float]:
    return math.degrees(x / R), math.degrees(2 * math.atan(math.exp(y / R)) - math.pi / 2)


def tile_merc_bounds(z: int, x: int, y: int, buffer_units: float = 0.0) -> tuple[float, float, float, float]:
    span = WORLD / 2**z
    pad = span * buffer_units / EXTENT
    minx = -WORLD / 2 + x * span
    maxy = WORLD / 2 - y * span
    return minx - pad, maxy - span - pad, minx + span + pad, maxy + pad


def tile_lonlat_bounds(z: int, x: int, y: int, buffer_units: float = 0.0) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = tile_merc_bounds(z, x, y, buffer_units)
    lo, hi = unmerc(minx, miny), unmerc(maxx, maxy)
    return lo[0], lo[1], hi[0], hi[1]


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    mx, my = merc(lon, lat)
    span = WORLD / 2**z
    return int((mx + WORLD / 2) // span), int((WORLD / 2 - my) // span)


def to_units(lon: float, lat: float, z: int, x: int, y: int) -> tuple[float, float]:
    """A lon/lat position in the tile's units (0..4096, y down), unrounded."""
    minx, _, maxx, maxy = tile_merc_bounds(z, x, y)
    mx, my = merc(lon, lat)
    scale = EXTENT / (maxx - minx)
    return (mx - minx) * scale, (maxy - my) * scale


def geometry_to_units(geom, z: int, x: int, y: int):
    minx, _, maxx, maxy = tile_merc_bounds(z, x, y)
    scale = EXTENT / (maxx - minx)

    def project(coords):
        lon, lat = coords[:, 0], coords[:, 1]
        import numpy as np

        mx = np.radians(lon) * R
        my = R * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))
        return np.column_stack([(mx - minx) * scale, (maxy - my) * scale])

    return shapely.transform(geom, project)


def decode(data: bytes) -> dict[str, dict[int, dict]]:
    """{layer: {feature id: {"properties", "geometry" (shapely, tile units, y down)}}}."""
    if not data:
        return {}
    raw = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    out: dict[str, dict[int, dict]] = {}
    for name, layer in raw.items():
        assert layer["extent"] == EXTENT, (name, layer["extent"])
        features = {}
        for feature in layer["features"]:
            fid = feature["id"]
            assert fid not in features, f"feature {fid} twice in layer {name}"
            features[fid] = {"properties": feature["properties"], "geometry": shapely.geometry.shape(feature["geometry"])}
        out[name] = features
    return out


def normalise(value):
    """Dates and datetimes compare as instants, whatever offset notation each side prints; floats
    rounded to 9 significant digits (MVT carries doubles, JSON prints shortest round-trip)."""
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if len(value) == 10:
                return parsed.date()
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        except ValueError:
            return value
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def normalised(props: dict) -> dict:
    return {k: normalise(v) for k, v in props.items() if v is not None}


def bbox_param(bounds) -> str:
    return ",".join(repr(v) for v in bounds)


def assert_problem(response, status: int | tuple[int, ...], *words: str) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA), response.headers.get("content-type")
    body = response.json()
    assert body["status"] == response.status_code and body.get("title")
    text = (body.get("detail") or "").lower()
    for word in words:
        assert word.lower() in text, (word, body)
    return body


def cases(store) -> list[tuple[str, str, int, int, int]]:
    """(tileset, tms, z, x, y) around features picked evenly through each layer, at levels that
    cover every layer's zoom range, thinning and simplifying levels, in all three tile matrix sets."""
    out = []
    picks = {
        "buildings": (13, 14, 16, 19),
        "cameras": (12, 13, 14, 15, 17),
        "key_places": (10, 12, 14),
        "urban_components": (15, 16, 18),
        "grids": (11, 13, 17),
        "streets": (8, 12, 15),
        "districts": (4, 10, 14),
        "onemap": (12, 14, 16, 18),
    }
    for tileset, zooms in picks.items():
        rows = read_layer(store, "cameras" if tileset == "onemap" else tileset)
        for i, z in enumerate(zooms):
            p = rows[(i * 7919) % len(rows)].geom.representative_point()
            x, y = tile_of(p.x, p.y, z)
            out.append((tileset, "WebMercatorQuad", z, x, y))
    rows = read_layer(store, "cameras")
    for tms, z in (("CGCS2000Quad", 14), ("CGCS2000Quad", 16), ("WorldCRS84Quad", 15)):
        p = rows[len(rows) // 3].geom
        # CGCS2000Quad: 180-degree tiles at level 1; WorldCRS84Quad: at level 0; both from (-180, 90)
        span = 360 / 2**z if tms == "CGCS2000Quad" else 180 / 2**z
        out.append(("cameras", tms, z, int((p.x + 180) // span), int((90 - p.y) // span)))
    return out
