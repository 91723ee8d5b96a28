"""OneMap's pygeoapi feature provider: pygeoapi's plugin contract over the city store.

pygeoapi builds one provider per request; everything costly (the store, count cache) lives in
the store registry, so construction is a few dictionary lookups.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import shapely
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    SchemaType,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from gis import crs
from gis.features import cursor, registry
from gis.features.cql import FilterError
from gis.features.query import FeatureQuery, LayerQueries, QueryError
from gis.security import audit
from gis.security.principal import current
from gis.security.roles import is_sensitive

LOG = logging.getLogger("onemap.features")
COUNT_BUDGET_MS = 2_000



class StoreBusy(ProviderGenericError):
    ogc_exception_code = "ServiceUnavailable"
    http_status_code = 503
    default_msg = "the city store is unavailable or too slow right now; retry shortly"


class OneMapProvider(BaseProvider):
    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.store_key = provider_def["data"]
        self.store = registry.lookup(self.store_key)
        self.layer = self.store.catalog[provider_def["layer"]]
        self.queries = LayerQueries(self.store, self.layer)
        # what the caller may see (gis.security): masked attributes are shown, never queryable
        self.view = current().attributes(self.layer)
        self._fields = {"id": {"type": "integer"}}
        for attribute in (a for a, masked in self.view if not masked):
            schema = attribute.json_schema()
            self._fields[attribute.name] = {k: schema[k] for k in ("type", "format") if k in schema}
            if attribute.enum:
                self._fields[attribute.name]["values"] = list(attribute.enum)

    def get_fields(self) -> dict:
        return self._fields

    def get_schema(self, schema_type: SchemaType = SchemaType.item):
        properties = {"id": {"type": "integer", "x-ogc-role": "id"}}
        properties.update({a.name: _schema(a, masked) for a, masked in self.view})
        properties["geometry"] = {"format": f"geometry-{self.layer.geometry.value.lower()}", "x-ogc-role": "primary-geometry"}
        return "application/schema+json", {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": self.layer.title,
            "properties": properties,
        }

    # -- reading -----------------------------------------------------------------------------------

    def query(
        self,
        offset=0,
        limit=10,
        resulttype="results",
        bbox=[],
        datetime_=None,
        properties=[],
        sortby=[],
        select_properties=[],
        skip_geometry=False,
        q=None,
        filterq=None,
        crs_transform_spec=None,
        **kwargs,
    ) -> dict:
        query = FeatureQuery(
            bbox=_storage_bbox(bbox),
            datetime=datetime_,
            equals=[(k, v) for k, v in properties if k != "id"],
            ids=[int(v) for k, v in properties if k == "id" and v.isdigit()] or None,
            filter=filterq,
            sortby=[(s["property"], s.get("order", "+") != "-") for s in sortby or []],
            properties=select_properties or None,
            skip_geometry=bool(skip_geometry),
            offset=int(offset or 0),
            limit=int(limit),
            after=cursor.after_id.get(),
        )
        target = _target(crs_transform_spec)
        with _translated_errors():
            matched = self._number_matched(query)
            if resulttype == "hits":
                return {"type": "FeatureCollection", "features": [], "numberMatched": matched, "numberReturned": 0}
            page = self.queries.read_page(query)
        features = self._features(page.rows, target)
        self._audit("features.items", query, len(features))
        collection = {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}
        if matched is not None:
            collection["numberMatched"] = matched
        return collection

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        text = str(identifier)
        if not text.isdigit() or len(text) > 18:
            raise ProviderItemNotFoundError(user_msg=f"no item {text[:40]!r}: ids are integers")
        query = FeatureQuery(ids=[int(text)], limit=1)
        with _translated_errors():
            page = self.queries.read_page(query)
        if not page.rows:
            raise ProviderItemNotFoundError(user_msg=f"no item {text} in {self.layer.id}")
        self._audit("features.item", query, 1)
        return self._features(page.rows, _target(crs_transform_spec))[0]

    def _audit(self, action: str, query: FeatureQuery, count: int) -> None:
        # reads of personal or security data are on the record, whoever reads them (gis.security.audit)
        if is_sensitive(self.layer):
            what = {k: v for k, v in (("filter", query.filter), ("equals", query.equals), ("ids", query.ids), ("datetime", query.datetime)) if v}
            audit.record(self.store, action, self.layer.id, bbox=query.bbox, filter=repr(what) if what else None, features=count)

    def _number_matched(self, query: FeatureQuery) -> int | None:
        meta = self.store.layer_meta(self.layer.id)
        if query.unfiltered and self.queries.area is None:
            return meta.feature_count  # kept exact by every write, in the same transaction
        cache = registry.counts(self.store_key)
        # a caller limited to streets or grids counts other rows: their view is part of the key
        key = (self.layer.id, meta.version, query.signature(), current().view_key)
        hit = cache.get(key)
        if hit is not None:
            return hit
        # A filtered count of a very large layer may take long: past the budget the answer
        # leaves numberMatched out (Part 1 allows it) rather than keep the page waiting.
        value = self.queries.count(query, COUNT_BUDGET_MS)
        if value is not None:
            cache.put(key, value)
        return value

    def _features(self, rows, target: str) -> list[dict]:
        if not rows:
            return []
        wkbs = [row[2] for row in rows]
        if wkbs[0] is None:
            geometries = [None] * len(rows)
        else:
            shapes = shapely.from_wkb(wkbs)
            shapes = crs.transform_geometries(np.asarray(shapes), crs.from_storage(target))
            geometries = json.loads("[" + ",".join(shapely.to_geojson(shapes).tolist()) + "]")
        features = []
        for (identifier, props, _), geometry in zip(rows, geometries):
            features.append({"type": "Feature", "id": identifier, "geometry": geometry, "properties": props})
        return features


def _schema(attribute, masked: bool) -> dict:
    schema = attribute.json_schema()
    if masked:
        schema.pop("enum", None)
        schema["description"] += f" (masked: {attribute.sensitivity.value} rule, see docs/security.md)"
    return schema


def _target(spec) -> str:
    # No spec means the client asked for the storage CRS itself (pygeoapi skips the identity
    # transform): output then follows EPSG:4490's axis order, latitude first.
    return spec.target_crs_uri if spec is not None else crs.STORAGE_CRS_URI


def _storage_bbox(bbox) -> tuple[float, float, float, float] | None:
    if not bbox:
        return None
    # pygeoapi hands the bbox over in EPSG:4490's authority order: lat, lon
    values = [float(v) for v in bbox]
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    return (values[1], values[0], values[3], values[2])


class _translated_errors:
    """Query errors become 400s naming the parameter; database trouble a 503, never a 500."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None:
            return False
        if isinstance(error, (QueryError, FilterError)):
            raise ProviderInvalidQueryError(user_msg=str(error)) from error
        if isinstance(error, (OperationalError, DBAPIError)):
            LOG.warning("store error: %s", error)
            raise StoreBusy(user_msg=StoreBusy.default_msg) from error
        return False
