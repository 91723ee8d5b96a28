"""pygeoapi provider for aggregate collections: one feature per shown group of an indicator.

The groups are gis.stats.aggregate's answer, so the values are /stats' values, suppressed the
same way; a group that is withheld is not a feature, and every page carries `suppressed`
(groups and value) so that the features' values plus it give the /stats total. Hexagons are
drawn from their H3 ids, grids from the grids layer. Answers are kept per data version.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import h3
import numpy as np
import pyproj
import shapely
from pygeoapi.provider.base import BaseProvider, ProviderInvalidQueryError, ProviderItemNotFoundError, SchemaType
from sqlalchemy import select

from gis import crs
from gis.aggregates.access import individual_access
from gis.aggregates.collections import AREA_LAYERS
from gis.features import registry
from gis.stats.aggregate import aggregate
from gis.stats.indicators import Indicators

GEOD = pyproj.Geod(ellps="GRS80")  # CGCS2000's ellipsoid
_FIELDS = {
    "key": {"type": "string", "description": "H3 cell id or area code"},
    "value": {"type": "number", "description": "the indicator's value, as /stats gives it"},
    "count": {"type": "number", "description": "the value, for indicators that count"},
    "sum": {"type": "number", "description": "the value, for indicators that add up an attribute"},
    "density": {"type": "number", "description": "value per km²"},
    "area_km2": {"type": "number", "description": "area of the hexagon or area"},
}
_lock = threading.Lock()
_registries: dict[tuple[str, str], Indicators] = {}
_answers: dict[tuple, tuple[list[dict], np.ndarray, dict]] = {}


class AggregateProvider(BaseProvider):
    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.store_key = provider_def["data"]
        self.store = registry.lookup(self.store_key)
        self.indicator = _indicators(self.store_key, self.store, provider_def["registry"]).get(provider_def["indicator"])
        self.area = provider_def["area"]
        self.res = provider_def.get("res")
        self.k = int(provider_def["k"])

    def get_fields(self) -> dict:
        summed = self.indicator.summed is not None
        return {name: dict(kind) for name, kind in _FIELDS.items() if name != ("count" if summed else "sum")}

    def get_schema(self, schema_type: SchemaType = SchemaType.item):
        properties = {"id": {"type": "string", "x-ogc-role": "id"}, **self.get_fields()}
        properties["geometry"] = {"format": "geometry-polygon", "x-ogc-role": "primary-geometry"}
        return "application/schema+json", {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": self.indicator.name,
            "properties": properties,
        }

    def query(self, offset=0, limit=10, resulttype="results", bbox=[], crs_transform_spec=None, **kwargs) -> dict:
        if kwargs.get("filterq") is not None or kwargs.get("properties"):
            raise ProviderInvalidQueryError(
                user_msg="aggregate collections take bbox, limit and offset only; filter with the process aggregate"
            )
        rows, shapes, suppressed = self._answer()
        chosen = np.arange(len(rows))
        if bbox:
            # pygeoapi passes the bbox in EPSG:4490's authority order: lat, lon
            values = [float(v) for v in bbox]
            box = shapely.box(values[1], values[0], values[3], values[2]) if len(values) == 4 else None
            if box is not None:
                chosen = chosen[shapely.intersects(shapes, box)]
        collection = {
            "type": "FeatureCollection",
            "numberMatched": int(len(chosen)),
            "suppressed": suppressed,
            "features": [],
            "numberReturned": 0,
        }
        if resulttype == "hits":
            return collection
        page = chosen[int(offset or 0) : int(offset or 0) + int(limit)]
        collection["features"] = self._features([rows[i] for i in page], shapes[page], crs_transform_spec)
        collection["numberReturned"] = len(collection["features"])
        return collection

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        rows, shapes, _ = self._answer()
        for i, row in enumerate(rows):
            if row["key"] == str(identifier):
                return self._features([row], shapes[i : i + 1], crs_transform_spec)[0]
        raise ProviderItemNotFoundError(user_msg=f"no shown group {str(identifier)[:40]!r}: unknown, empty or withheld")

    def _answer(self) -> tuple[list[dict], np.ndarray, dict]:
        layers = [self.indicator.layer] + ([AREA_LAYERS[self.area][0]] if self.area in AREA_LAYERS else [])
        versions = tuple(self.store.layer_meta(layer).version for layer in layers)
        key = (self.store_key, self.indicator.id, self.area, self.res, self.k, versions)
        hit = _answers.get(key)
        if hit is None:
            hit = self._compute()
            with _lock:
                if len(_answers) > 256:
                    _answers.clear()
                _answers[key] = hit
        return hit

    def _compute(self) -> tuple[list[dict], np.ndarray, dict]:
        answer = aggregate(
            self.store, self.indicator, self.area, self.res, k=self.k,
            individual_access=individual_access(self.indicator.layer),
        )
        keys = [key for key, _ in answer.groups]
        shapes = _hexagons(keys) if self.area == "h3" else _area_polygons(self.store, self.area, keys)
        areas = [abs(GEOD.geometry_area_perimeter(s)[0]) / 1e6 if s is not None else None for s in shapes]
        measure = "sum" if self.indicator.summed else "count"
        rows = []
        for (key, value), area in zip(answer.groups, areas):
            number = _number(value)
            rows.append({
                "key": key, "value": number, measure: number, "area_km2": area,
                "density": None if not area else round(float(value) / area, 6),
            })
        document = answer.as_json()["suppressed"]
        return rows, np.array(shapes, dtype=object), document

    def _features(self, rows: list[dict], shapes: np.ndarray, spec) -> list[dict]:
        target = spec.target_crs_uri if spec is not None else crs.STORAGE_CRS_URI
        projected = crs.transform_geometries(np.asarray(shapes), crs.from_storage(target))
        geometries = [None if s is None else json.loads(shapely.to_geojson(s)) for s in projected]
        return [
            {"type": "Feature", "id": row["key"], "geometry": geometry, "properties": dict(row)}
            for row, geometry in zip(rows, geometries)
        ]


def _indicators(store_key: str, store, path: str) -> Indicators:
    found = _registries.get((store_key, path))
    if found is None:
        found = Indicators.load(Path(path), store.catalog)
        with _lock:
            _registries[(store_key, path)] = found
    return found


def _hexagons(keys: list[str]) -> list[shapely.Polygon]:
    return [shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(key)]) for key in keys]


def _area_polygons(store, area: str, keys: list[str]) -> list:
    layer_id, code = AREA_LAYERS[area]
    table = store.tables[layer_id]
    with store.engine.connect() as conn:
        rows = conn.execute(select(table.c[code], store.backend.as_wkb(table.c.geom))).all()
    by_code = {r[0]: shapely.from_wkb(bytes(r[1])) for r in rows}
    return [by_code.get(key) for key in keys]


def _number(value):
    return int(value) if float(value).is_integer() else round(float(value), 6)
