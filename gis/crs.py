"""Coordinate reference systems OneMap serves, and the transforms between them and storage.

Storage is CGCS2000 (EPSG:4490) with x = longitude, y = latitude, as GIS software stores it.
Outputs follow OGC API - Features Part 2: a CRS's authority axis order, so EPSG:4326 and
EPSG:4490 are latitude first, the Gauss-Krüger CRSs EPSG:4549/4528 northing first, while CRS84
and EPSG:3857 are x first. One rule decides that (`_north_first`), for every output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pyproj
import shapely

STORAGE_EPSG = 4490
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
STORAGE_CRS_URI = EPSG_URI.format(STORAGE_EPSG)

# CGCS2000 geographic, WGS 84 (and Web Mercator) for web clients, CGCS2000 3-degree
# Gauss-Krüger for planners: CM 120E (EPSG:4549) and zone 40 (EPSG:4528) cover the city.
SUPPORTED_CRS: tuple[str, ...] = (
    CRS84,
    EPSG_URI.format(4326),
    EPSG_URI.format(3857),
    STORAGE_CRS_URI,
    EPSG_URI.format(4549),
    EPSG_URI.format(4528),
)


class CRSNotSupported(ValueError):
    pass


@lru_cache(maxsize=32)
def crs_for(uri: str) -> pyproj.CRS:
    if uri not in SUPPORTED_CRS:
        raise CRSNotSupported(f"CRS {uri!r} is not supported; use one of {', '.join(SUPPORTED_CRS)}")
    return pyproj.CRS.from_user_input("OGC:CRS84" if uri == CRS84 else f"EPSG:{uri.rsplit('/', 1)[1]}")


@lru_cache(maxsize=32)
def _north_first(uri: str) -> bool:
    first_axis = crs_for(uri).axis_info[0]
    return first_axis.direction.lower() == "north"


def web_mercator() -> pyproj.Transformer:
    """Storage lon/lat to EPSG:3857 x/y (the tile renderers' projection)."""
    return _transformer(STORAGE_CRS_URI, EPSG_URI.format(3857))


_TRANSFORMERS: dict[tuple[str, str], pyproj.Transformer] = {}
# lru_cache does not hold other callers back while one builds: 8 threads asking at once for the
# first time made 8 from_crs searches (1.7 s of CPU against 0.22), as a tile worker's render
# threads did at its first hexagon tiles, one per resolution being drawn
_BUILDING = threading.Lock()


def _transformer(source: str, target: str) -> pyproj.Transformer:
    found = _TRANSFORMERS.get((source, target))
    if found is None:
        with _BUILDING:
            found = _TRANSFORMERS.get((source, target))
            if found is None:
                found = _TRANSFORMERS[(source, target)] = _from_chosen_pipeline(source, target)
    return found


def _from_chosen_pipeline(source: str, target: str) -> pyproj.Transformer:
    """pyproj keeps one PROJ object per thread and builds it on the thread's first transform; for a
    transformer made by from_crs that is the whole search of proj.db again: 0.16-0.21 s here, paid
    by every render thread of every tile worker (8-9% of the workers' CPU over a cold walk of the
    bench list) and by every new request thread on its first reprojected answer. Made from the
    pipeline that search chose, a thread's first transform takes ~0.5 ms, and for every pair of
    SUPPORTED_CRS the coordinates are the same to the bit (tests/test_crs_transformers.py): none has
    a choice of operations by area, only ballpark datum shifts and projections."""
    chosen = pyproj.Transformer.from_crs(crs_for(source), crs_for(target), always_xy=True)
    return pyproj.Transformer.from_pipeline(chosen.definition)


def from_storage(target_uri: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """A coordinate function (n×2 lon/lat array → n×2 in `target_uri`'s axis order), or None
    when the target is CRS84, whose coordinates are the stored ones (same datum within mm)."""
    if target_uri == CRS84:
        return None
    swap = _north_first(target_uri)
    transformer = None if target_uri == STORAGE_CRS_URI else _transformer(STORAGE_CRS_URI, target_uri)

    def apply(coords: np.ndarray) -> np.ndarray:
        if transformer is not None:
            x, y = transformer.transform(coords[:, 0], coords[:, 1])
            coords = np.column_stack([x, y])
        return coords[:, ::-1] if swap else coords

    return apply


def to_storage(source_uri: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The inverse of `from_storage`: coordinates in `source_uri`'s axis order → lon/lat."""
    if source_uri == CRS84:
        return None
    swap = _north_first(source_uri)
    transformer = None if source_uri == STORAGE_CRS_URI else _transformer(source_uri, STORAGE_CRS_URI)

    def apply(coords: np.ndarray) -> np.ndarray:
        if swap:
            coords = coords[:, ::-1]
        if transformer is not None:
            x, y = transformer.transform(coords[:, 0], coords[:, 1])
            coords = np.column_stack([x, y])
        return coords

    return apply


def transform_geometries(geoms: np.ndarray, function: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    if function is None or not len(geoms):
        return geoms
    return shapely.transform(geoms, function)


def bbox_to_storage(bbox: tuple[float, ...], source_uri: str) -> tuple[float, float, float, float]:
    """A bbox in `source_uri` (its axis order) as lon/lat bounds, densified along its edges so a
    projected box keeps its curved outline's full extent."""
    lower, upper = (bbox[0], bbox[1]), (bbox[2], bbox[3])
    if len(bbox) == 6:
        lower, upper = (bbox[0], bbox[1]), (bbox[3], bbox[4])
    function = to_storage(source_uri)
    if function is None:
        return (lower[0], lower[1], upper[0], upper[1])
    outline = shapely.segmentize(shapely.box(lower[0], lower[1], upper[0], upper[1]), (upper[0] - lower[0]) / 16 or 1)
    return tuple(shapely.transform(outline, function).bounds)


def within_area_of_use(lonlat_bbox: tuple[float, float, float, float], uri: str) -> bool:
    """Whether a lon/lat box meets the area where `uri`'s coordinates are meaningful.

    A Gauss-Krüger zone stays usable a little past its official band (planners at a zone edge
    do use it), so the test allows a margin; it exists to catch coordinates that mean nothing.
    """
    area = crs_for(uri).area_of_use
    if area is None:
        return True
    margin = 3.0
    minx, miny, maxx, maxy = lonlat_bbox
    return not (
        maxx < area.west - margin or minx > area.east + margin or maxy < area.south - margin or miny > area.north + margin
    )
