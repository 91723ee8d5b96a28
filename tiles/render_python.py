"""Tiles built in Python for the GeoPackage store: R*Tree lookup, shapely clip, MVT encoding.

Mirrors render_postgis step by step so both paths give the same features and attributes:
candidates by envelope (the layer's R*Tree via `backend.bbox_clause`), then per geometry: drop
lines/polygons smaller than half a unit (ST_AsMVTGeom's shortcut), clip to the buffered tile,
simplify (topology-preserving) when the detail rules ask, move to tile units with y down, snap to
the integer grid keeping a valid result (GEOS precision reduction, as ST_AsMVTGeom validates after
snapping), drop what collapsed; points then thinned per cell, lowest id first.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely
from sqlalchemy import Connection, select

from gis.catalog import AttrType, GeometryType
from gis.crs import web_mercator
from gis.storage.backends import Backend
from tiles.matrix import BUFFER, EXTENT
from tiles.mvt_encode import encode_layer
from tiles.plan import LayerPlan, Rendered, TilePlan

_POLYGONAL = (GeometryType.Polygon, GeometryType.MultiPolygon)


def _to_mercator(coords: np.ndarray) -> np.ndarray:
    x, y = web_mercator().transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def _value(value, kind: AttrType):
    """Attribute values exactly as ST_AsMVT writes them after render_postgis's casts."""
    if value is None:
        return None
    if kind is AttrType.datetime:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind is AttrType.date:
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if kind is AttrType.integer:
        return int(value)
    if kind is AttrType.number:
        return float(value)
    if kind is AttrType.boolean:
        return bool(value)
    return value


def _features(conn: Connection, backend: Backend, plan: TilePlan, lp: LayerPlan, modulus: int) -> list[dict]:
    table = lp.table
    names = [n for n, _ in lp.attributes]
    kinds = [k for _, k in lp.attributes]
    # masked attributes leave the database masked (gis.security.masking), as in /items
    query = select(table.c.id, *(lp.column(n) for n in names), backend.as_wkb(table.c.geom).label("wkb"))
    query = query.where(backend.bbox_clause(table, plan.grid.lonlat_bounds(plan.z, plan.x, plan.y, BUFFER + 1)))
    if lp.where is not None:
        query = query.where(lp.where)
    if modulus > 1:
        query = query.where(table.c.id % modulus == 0)
    rows = conn.execute(query.order_by(table.c.id)).all()
    if not rows:
        return []
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows])
    if not plan.grid.geographic:
        geoms = shapely.transform(geoms, _to_mercator)
    minx, miny, maxx, maxy = plan.bounds()
    bminx, bminy, bmaxx, bmaxy = plan.buffered
    unit = plan.unit
    point = lp.layer.geometry is GeometryType.Point
    polygonal = lp.layer.geometry in _POLYGONAL

    keep = np.ones(len(geoms), dtype=bool)
    if not point:
        # ST_AsMVTGeom's shortcut: lines and polygons under half a unit both ways are dropped unseen
        b = shapely.bounds(geoms)
        keep &= ~(((b[:, 2] - b[:, 0]) < unit / 2) & ((b[:, 3] - b[:, 1]) < unit / 2))
        geoms = np.where(keep, geoms, None)
    scale = EXTENT / (maxx - minx)
    step = lp.detail.grid_units or 1.0
    # to tile units, y down, snapped with rint (round half to even) as liblwgeom's grid does; on the
    # coarser generalisation grid first when the detail rules ask (ST_SnapToGrid in render_postgis)
    geoms = shapely.transform(
        geoms,
        lambda c: np.rint(np.rint(np.column_stack([(c[:, 0] - minx) * scale, (maxy - c[:, 1]) * scale]) / step) * step),
    )
    if not point:
        geoms = shapely.simplify(geoms, 0.0, preserve_topology=False)  # drops repeated/collinear points, collapses
    lo, hi = -BUFFER, EXTENT + BUFFER
    if polygonal:
        # Wagyu clips and validates in integer space, and drops rings under one square unit
        geoms = shapely.make_valid(geoms)
        geoms = shapely.clip_by_rect(geoms, lo, lo, hi, hi)
        geoms = shapely.make_valid(shapely.transform(geoms, np.rint))  # cut points rounded half to even, as Wagyu
        geoms = _areas(geoms)
    elif point:
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)
        keep &= (x >= lo) & (x <= hi) & (y >= lo) & (y <= hi)  # edges included, as gbox_contains_2d does
    else:
        b = shapely.bounds(geoms)
        inside = (b[:, 0] >= lo) & (b[:, 1] >= lo) & (b[:, 2] <= hi) & (b[:, 3] <= hi)
        cut = ~inside & keep
        geoms[cut] = shapely.transform(shapely.clip_by_rect(geoms[cut], lo, lo, hi, hi), np.rint)
        keep &= ~shapely.is_missing(geoms)
        keep[keep] &= shapely.length(geoms[keep]) > 0
    keep &= ~shapely.is_missing(geoms)
    keep[keep] &= ~shapely.is_empty(geoms[keep])
    index = np.flatnonzero(keep)

    if point and lp.detail.thin_cell:
        cell = lp.detail.thin_cell
        cx = np.floor(shapely.get_x(geoms[index]) / cell)
        cy = np.floor(shapely.get_y(geoms[index]) / cell)
        # rows come ordered by id: the first in each cell is the one with the lowest id
        _, first = np.unique(np.column_stack([cx, cy]), axis=0, return_index=True)
        index = index[np.sort(first)]

    features = []
    for i in index:
        row = rows[i]
        props = {}
        for n, k, v in zip(names, kinds, row[1:-1]):
            value = _value(v, k)
            if value is not None:
                props[n] = value
        features.append({"geometry": geoms[i], "properties": props, "id": int(row[0])})
    return features


def _areas(geoms: np.ndarray) -> np.ndarray:
    """Per precision-reduced geometry, its polygonal parts that cover at least one square unit
    (None when none does), all geometries at once."""
    out = np.full(len(geoms), None, dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    ok = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= 1.0)  # 3: Polygon
    parts, owner = parts[ok], owner[ok]
    if not len(parts):
        return out
    owners, dense, counts = np.unique(owner, return_inverse=True, return_counts=True)
    single = counts[dense] == 1
    out[owner[single]] = parts[single]
    multi = owners[counts > 1]
    if len(multi):
        _, dense_multi = np.unique(owner[~single], return_inverse=True)
        out[multi] = shapely.multipolygons(parts[~single], indices=dense_multi)
    return out


def render(conn: Connection, backend: Backend, plan: TilePlan, moduli: dict[str, int]) -> Rendered:
    chunks, counts = [], {}
    for lp in plan.layers:
        features = _features(conn, backend, plan, lp, moduli.get(lp.name, 1))
        counts[lp.name] = len(features)
        if features:
            chunks.append(encode_layer(lp.name, features, EXTENT))
    # MVT layers are independent length-prefixed messages: a tile is their concatenation
    return Rendered(b"".join(chunks), counts)
