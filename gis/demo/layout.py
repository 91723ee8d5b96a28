"""The demo city's ground plan: boundary, streets and districts, and the partition tools.

Everything here works in a local metric frame (x east, y north, metres from the city centre),
which keeps sizes and areas honest; `to_lonlat` maps the finished geometries to CGCS2000
lon/lat with one affine map, so nothing that is disjoint in metres overlaps in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import Polygon

# Pingdu, Shandong: city centre in CGCS2000 (EPSG:4490) degrees
LON0, LAT0 = 119.96, 36.78
# metres per degree at LAT0 on the CGCS2000 ellipsoid (close enough to GRS80's series)
M_PER_DEG_LAT = 111_132.92 - 559.82 * math.cos(2 * math.radians(LAT0)) + 1.175 * math.cos(4 * math.radians(LAT0))
M_PER_DEG_LON = 111_412.84 * math.cos(math.radians(LAT0)) - 93.5 * math.cos(3 * math.radians(LAT0))

# (code, name, district index, seat x km, seat y km): the seats sit roughly where the real
# town seats are, relative to the city centre.
STREETS = [
    ("370283001", "凤台街道", 0, -3.0, 0.8),
    ("370283002", "李园街道", 0, 1.2, -2.6),
    ("370283003", "东阁街道", 0, 3.4, 2.2),
    ("370283004", "同和街道", 0, -2.5, -7.5),
    ("370283005", "白沙河街道", 0, 5.5, -6.5),
    ("370283101", "大泽山镇", 1, -9.8, 26.6),
    ("370283102", "旧店镇", 1, 5.4, 28.0),
    ("370283103", "田庄镇", 1, -6.0, 14.0),
    ("370283104", "新河镇", 2, -28.0, 28.0),
    ("370283105", "明村镇", 2, -21.0, 11.0),
    ("370283106", "店子镇", 2, -22.0, -4.0),
    ("370283107", "崔家集镇", 3, -15.0, -18.0),
    ("370283108", "蓼兰镇", 3, 1.0, -19.0),
    ("370283109", "南村镇", 3, 14.0, -22.0),
    ("370283110", "云山镇", 4, 16.0, 15.0),
    ("370283111", "古岘镇", 4, 22.0, 0.0),
    ("370283112", "仁兆镇", 4, 25.0, -24.0),
]
DISTRICTS = [
    ("37028301", "平度城区"),
    ("37028302", "平度北部片区"),
    ("37028303", "平度西部片区"),
    ("37028304", "平度南部片区"),
    ("37028305", "平度东部片区"),
]
TOWN_STREETS = 5  # the first five are the jiedao around the town centre
# Every overlay snaps to a millimetre grid: floating overlays leave vertices nanometres apart,
# which later overlays trip over and which collapse into self-intersections in degrees.
PRECISION_M = 0.001


def to_lonlat(geoms: np.ndarray) -> np.ndarray:
    scale = np.array([1 / M_PER_DEG_LON, 1 / M_PER_DEG_LAT])
    offset = np.array([LON0, LAT0])
    return shapely.transform(geoms, lambda xy: xy * scale + offset)


def xy_to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return LON0 + x / M_PER_DEG_LON, LAT0 + y / M_PER_DEG_LAT


def city_boundary(rng: np.random.Generator) -> Polygon:
    """A lobed outline round the town seats, about Pingdu's 3,200 km² and 0.8° x 0.65°."""
    seats = np.array([(s[3], s[4]) for s in STREETS]) * 1000
    hull = shapely.convex_hull(shapely.multipoints(seats)).buffer(6_000, quad_segs=16)
    ring = shapely.segmentize(hull.exterior, 800)
    xy = shapely.get_coordinates(ring)[:-1]
    centre = np.asarray(hull.centroid.coords[0])
    rel = xy - centre
    theta = np.arctan2(rel[:, 1], rel[:, 0])
    phases = rng.uniform(0, 2 * np.pi, 4)
    wobble = (
        1_600 * np.sin(3 * theta + phases[0])
        + 900 * np.sin(5 * theta + phases[1])
        + 450 * np.sin(9 * theta + phases[2])
        + 200 * np.sin(17 * theta + phases[3])
    )
    xy = xy + rel / np.linalg.norm(rel, axis=1)[:, None] * wobble[:, None]
    poly = shapely.set_precision(shapely.make_valid(shapely.polygons(np.vstack([xy, xy[:1]]))), PRECISION_M)
    return max(shapely.get_parts(poly), key=lambda p: p.area)


def voronoi_partition(region, seeds: np.ndarray) -> list:
    """Cells of the seeds' Voronoi diagram clipped to the region, in seed order, one polygon each."""
    if len(seeds) == 1:
        return [region]
    minx, miny, maxx, maxy = region.bounds
    frame = shapely.box(minx - 1e4, miny - 1e4, maxx + 1e4, maxy + 1e4)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True))
    cells = cells[shapely.get_type_id(cells) == 3]  # a seed GEOS merged with a near neighbour has no cell
    return merge_fragments(list(shapely.intersection(cells, region, grid_size=PRECISION_M)))


def merge_fragments(parts: list, grid_size: float = PRECISION_M) -> list:
    """Make every part a single polygon: stray pieces join the neighbour they share most edge with.

    Clipping convex cells to a concave parent leaves islands; folding them into a neighbour keeps
    the partition gap-free while each part stays one Polygon (grids must be Polygons).
    """
    parts = [_polygonal(p) if not p.is_empty else Polygon() for p in parts]
    for _ in range(6):
        multi = [i for i, p in enumerate(parts) if len(shapely.get_parts(p)) > 1]
        if not multi:
            break
        tree = shapely.STRtree(parts)
        moved: dict[int, list] = {}
        for i in multi:
            pieces = sorted(shapely.get_parts(parts[i]), key=lambda p: -p.area)
            parts[i] = pieces[0]
            for piece in pieces[1:]:
                near = [j for j in tree.query(piece, predicate="intersects") if j != i]
                if not near:
                    continue  # an island of the parent itself: nothing to join, dropped
                shared = shapely.length(shapely.intersection(piece.boundary, [parts[j].boundary for j in near]))
                moved.setdefault(int(near[int(np.argmax(shared))]), []).append(piece)
        for j in sorted(moved):
            parts[j] = _polygonal(shapely.union_all([parts[j], *moved[j]], grid_size=grid_size))
    # an empty part (all its land went to atoms anchored elsewhere) stays empty for the caller to drop
    return [p if isinstance(p, Polygon) or p.is_empty else max(shapely.get_parts(p), key=lambda q: q.area) for p in parts]


def snap_to_atoms(parts: list, atoms: np.ndarray, anchors: np.ndarray) -> tuple[list, np.ndarray]:
    """Move partition edges off the atoms: each atom goes whole to the part holding its anchor.

    Atoms are town blocks (with their half of the surrounding roads) and village footprints, so
    grid and street boundaries run along roads and round villages instead of through buildings.
    Returns the new parts and each atom's part index.
    """
    if len(atoms) == 0:
        return parts, np.zeros(0, dtype=int)
    owner = locate(parts, anchors)
    tree = shapely.STRtree(atoms)
    new = []
    for k, part in enumerate(parts):
        hit = tree.query(part, predicate="intersects")
        mine = np.flatnonzero(owner == k)
        if len(hit) == 0 and len(mine) == 0:
            new.append(part)
            continue
        rest = part
        if len(hit):
            rest = shapely.difference(part, shapely.union_all(atoms[hit], grid_size=PRECISION_M), grid_size=PRECISION_M)
        new.append(_polygonal(shapely.union_all([rest, *atoms[mine]], grid_size=PRECISION_M)))
    return merge_fragments(new), owner


def locate(parts: list, points: np.ndarray) -> np.ndarray:
    """Index of the part containing each point (x, y rows); the nearest part for edge cases."""
    pts = shapely.points(points)
    tree = shapely.STRtree(parts)
    found = np.full(len(pts), -1, dtype=int)
    inp, idx = tree.query(pts, predicate="within")
    found[inp[::-1]] = idx[::-1]  # first match wins on a shared edge
    missing = np.flatnonzero(found < 0)
    if len(missing):
        found[missing] = tree.nearest(pts[missing])
    return found


def _polygonal(geom):
    if isinstance(geom, (Polygon, shapely.MultiPolygon)):
        return geom
    polys = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and not p.is_empty]
    return shapely.MultiPolygon(polys) if len(polys) != 1 else polys[0]


@dataclass
class Admin:
    boundary: Polygon
    streets: list  # Polygon per STREETS entry
    districts: list  # MultiPolygon per DISTRICTS entry


def admin_areas(boundary: Polygon, rng: np.random.Generator, atoms: np.ndarray, anchors: np.ndarray) -> Admin:
    seats = np.array([(s[3], s[4]) for s in STREETS]) * 1000
    # seeds a little off the seats, so the cells are not perfectly centred on the towns
    seeds = seats + rng.normal(0, 600, seats.shape)
    seeds[0:TOWN_STREETS] = seats[0:TOWN_STREETS] + rng.normal(0, 200, (TOWN_STREETS, 2))
    streets = voronoi_partition(boundary, seeds)
    streets, _ = snap_to_atoms(streets, atoms, anchors)
    districts = []
    for d in range(len(DISTRICTS)):
        members = [streets[i] for i, s in enumerate(STREETS) if s[2] == d]
        union = _polygonal(shapely.union_all(members, grid_size=PRECISION_M))
        districts.append(union if isinstance(union, shapely.MultiPolygon) else shapely.MultiPolygon([union]))
    return Admin(boundary, streets, districts)
