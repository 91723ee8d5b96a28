"""A small synthetic city for the tile tests, loaded identically into PostGIS and GeoPackage.

Until gis.demo lands the tile tests make their own data: every layer of the catalog gets features
of its geometry type with attribute values drawn from its declared types and enums (some nulls),
over a 0.3° x 0.25° city near Hefei. Polygons have jagged edges so simplification has work to do.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely

from gis.catalog import AttrType, GeometryType, Layer
from gis.storage.store import Batch, Store

CITY = (117.10, 31.70, 117.40, 31.95)
COUNTS = {"cameras": 3000, "key_places": 800, "urban_components": 12000, "buildings": 12000, "population": 500}


def _jagged_box(rng, x0, y0, x1, y1, steps=12, noise=0.0):
    xs = np.linspace(x0, x1, steps)
    ys = np.linspace(y0, y1, steps)
    ring = (
        [(x, y0) for x in xs[:-1]]
        + [(x1, y) for y in ys[:-1]]
        + [(x, y1) for x in xs[::-1][:-1]]
        + [(x0, y) for y in ys[::-1][:-1]]
    )
    pts = np.array(ring)
    if noise:
        pts[1:] += rng.uniform(-noise, noise, size=(len(pts) - 1, 2))
    return shapely.Polygon(pts).buffer(0)


def _partition(rng, n: int, noise: float, multi: bool):
    minx, miny, maxx, maxy = CITY
    w, h = (maxx - minx) / n, (maxy - miny) / n
    shapes = []
    for i in range(n):
        for j in range(n):
            poly = _jagged_box(rng, minx + i * w, miny + j * h, minx + (i + 1) * w, miny + (j + 1) * h, 16, noise)
            shapes.append(shapely.MultiPolygon([poly]) if multi else poly)
    return shapes


def _buildings(rng, n: int):
    minx, miny, maxx, maxy = CITY
    cx = rng.uniform(minx, maxx, n)
    cy = rng.uniform(miny, maxy, n)
    w = rng.uniform(0.00005, 0.0004, n)
    h = rng.uniform(0.00005, 0.0004, n)
    boxes = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    angles = rng.uniform(0, 90, n)
    return np.array([shapely.affinity.rotate(b, a) for b, a in zip(boxes, angles)], dtype=object)


def _points(rng, n: int):
    minx, miny, maxx, maxy = CITY
    # clustered like a real city: half around a centre, half uniform
    k = n // 2
    x = np.concatenate([rng.normal(117.25, 0.03, k), rng.uniform(minx, maxx, n - k)])
    y = np.concatenate([rng.normal(31.82, 0.03, k), rng.uniform(miny, maxy, n - k)])
    return shapely.points(np.clip(x, minx, maxx), np.clip(y, miny, maxy))


def _values(rng, layer: Layer, attribute, n: int) -> list:
    kind = attribute.type
    if attribute.enum:
        values = list(rng.choice(attribute.enum, n))
    elif kind is AttrType.string:
        values = [f"{attribute.name}-{i % 97}" for i in range(n)]
    elif kind is AttrType.integer:
        values = [int(v) for v in rng.integers(1, 2000, n)]
    elif kind is AttrType.number:
        values = [float(v) for v in np.round(rng.uniform(0, 500, n), 3)]
    elif kind is AttrType.boolean:
        values = [bool(v) for v in rng.integers(0, 2, n)]
    elif kind is AttrType.date:
        values = [dt.date(1980, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 15000, n)]
    else:
        base = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
        values = [base + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 300_000_000, n)]
    if not attribute.required:
        values = [None if rng.random() < 0.1 else v for v in values]
    return values


def geometries(rng, layer: Layer):
    if layer.id == "districts":
        return _partition(rng, 3, 0.002, multi=True)
    if layer.id == "streets":
        return _partition(rng, 8, 0.0008, multi=True)
    if layer.id == "grids":
        return _partition(rng, 30, 0.0, multi=layer.geometry is GeometryType.MultiPolygon)
    n = COUNTS.get(layer.id, 1000)
    if layer.geometry is GeometryType.Point:
        return _points(rng, n)
    polys = _buildings(rng, n)
    if layer.geometry is GeometryType.MultiPolygon:
        return [shapely.MultiPolygon([p]) for p in polys]
    return polys


def load_city(store: Store, seed: int = 7) -> None:
    """Replace every layer of the store with the synthetic city (deterministic for a seed)."""
    store.initialise()
    for layer in store.catalog:
        rng = np.random.default_rng([seed, sum(map(ord, layer.id))])
        geoms = np.asarray(geometries(rng, layer), dtype=object)
        n = len(geoms)
        ids = list(range(1, n + 1))
        columns = {a.name: _values(rng, layer, a, n) for a in layer.attributes}
        with store.replacing(layer.id) as loader:
            loader.append(Batch(ids, geoms, columns))
