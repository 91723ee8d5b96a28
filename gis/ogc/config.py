"""pygeoapi's configuration, derived: the server sections from pygeoapi-config.yml, the
resources from the layer catalog and the store's metadata. Nothing about a layer is written
here; it is read from its layer file.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from gis.catalog import Catalog, Layer
from gis.crs import STORAGE_CRS_URI, SUPPORTED_CRS
from gis.settings import Settings
from gis.storage.store import LayerMeta

PROVIDER = "gis.features.provider.OneMapProvider"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def load_base(path: Path) -> dict:
    try:
        base = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path} is missing: it holds pygeoapi's server and metadata sections") from err
    if "resources" in base:
        raise ValueError(f"{path}: resources are derived from layers/; remove the resources section")
    return base


def build_config(
    settings: Settings, catalog: Catalog, meta: dict[str, LayerMeta], store_key: str, aggregates: dict | None = None
) -> dict:
    config = copy.deepcopy(load_base(settings.server.pygeoapi_config))
    server = config.setdefault("server", {})
    server["url"] = settings.server.public_url
    server["bind"] = {"host": settings.server.host, "port": settings.server.port}
    server.setdefault("limits", {}).update(
        default_items=settings.server.default_items, max_items=settings.server.max_items
    )
    config["resources"] = {
        layer.id: collection(layer, meta.get(layer.id), store_key) for layer in catalog.published
    }
    config["resources"].update(aggregates or {})  # gis.aggregates.collections
    return config


def collection(layer: Layer, meta: LayerMeta | None, store_key: str) -> dict:
    bbox = list(meta.bbox) if meta and meta.bbox else [-180.0, -90.0, 180.0, 90.0]
    extents: dict = {"spatial": {"bbox": bbox, "crs": CRS84}}
    if layer.temporal:
        extents["temporal"] = {"begin": None, "end": None}
    return {
        "type": "collection",
        "title": {"en": layer.title, "zh": layer.title_zh},
        "description": layer.description,
        "keywords": list(layer.keywords),
        "links": [],
        "extents": extents,
        "providers": [provider(layer, store_key)],
    }


def provider(layer: Layer, store_key: str) -> dict:
    definition = {
        "type": "feature",
        "name": PROVIDER,
        "data": store_key,
        "layer": layer.id,
        "id_field": "id",
        "storage_crs": STORAGE_CRS_URI,
        "crs": list(SUPPORTED_CRS),
    }
    if layer.title_field:
        definition["title_field"] = layer.title_field
    if layer.temporal:
        definition["time_field"] = layer.temporal
    return definition
