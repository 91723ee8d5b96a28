"""Which aggregate collections exist, and their pygeoapi resources.

Derived from the indicator registry and `layers/indicators/collections.yml`; the ids carry no
dots (QGIS cannot load dotted ids): agg_<indicator>_h3_<res>, agg_<indicator>_<area>.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from gis.crs import STORAGE_CRS_URI, SUPPORTED_CRS
from gis.hexagons import FINEST_RES
from gis.stats.indicators import Indicator, Indicators

PROVIDER = "gis.aggregates.provider.AggregateProvider"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
AREA_LAYERS = {"grid": ("grids", "grid_code")}  # area -> (layer holding its polygons, its key)


class CollectionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    h3: list[int] = Field(default_factory=list)
    areas: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class AggregateCollection:
    id: str
    indicator: Indicator
    area: str  # "h3" or a key of AREA_LAYERS
    res: int | None

    @property
    def title(self) -> str:
        return f"{self.indicator.name} by " + (f"H3 hexagon (resolution {self.res})" if self.res is not None else self.area)


def definitions(path: Path, indicators: Indicators) -> list[AggregateCollection]:
    try:
        document = CollectionsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except FileNotFoundError:
        return []
    except Exception as err:
        raise ValueError(f"{path.name}: {err}") from err
    for res in document.h3:
        if not 0 <= res <= FINEST_RES:
            raise ValueError(f"{path.name}: H3 resolutions must lie between 0 and {FINEST_RES}, got {res}")
    for area in document.areas:
        if area not in AREA_LAYERS:
            raise ValueError(f"{path.name}: areas may be {', '.join(AREA_LAYERS)}, got {area!r}")
    found = []
    for indicator in indicators:
        found += [AggregateCollection(f"agg_{indicator.id}_h3_{res}", indicator, "h3", res) for res in document.h3]
        found += [AggregateCollection(f"agg_{indicator.id}_{area}", indicator, area, None) for area in document.areas]
    return found


def resources(collections: list[AggregateCollection], bbox: list[float], store_key: str, registry_path: Path, k: int) -> dict:
    return {c.id: _resource(c, bbox, store_key, registry_path, k) for c in collections}


def _resource(c: AggregateCollection, bbox: list[float], store_key: str, registry_path: Path, k: int) -> dict:
    indicator = c.indicator
    return {
        "type": "collection",
        "title": {"en": c.title, "zh": indicator.name_zh},
        "description": (
            f"{indicator.definition} Unit: {indicator.unit}. Each feature is one "
            + ("H3 hexagon" if c.area == "h3" else c.area)
            + " with value, density per km² and area_km2, the same numbers as /stats."
            + (" Groups of fewer than k people are withheld and counted in `suppressed`." if indicator.suppress else "")
        ),
        "keywords": ["aggregate", "statistics", indicator.id, c.area],
        "links": [],
        "extents": {"spatial": {"bbox": bbox, "crs": CRS84}},
        "providers": [
            {
                "type": "feature",
                "name": PROVIDER,
                "data": store_key,
                "indicator": indicator.id,
                "registry": str(registry_path),
                "area": c.area,
                "res": c.res,
                "k": k,
                "id_field": "id",
                "title_field": "key",
                "storage_crs": STORAGE_CRS_URI,
                "crs": list(SUPPORTED_CRS),
            }
        ],
    }


def for_app(settings, store, indicators: Indicators, store_key: str) -> dict:
    """The pygeoapi resources of every aggregate collection of this app."""
    registry_path = settings.server.indicator_registry
    found = definitions(registry_path.parent / "collections.yml", indicators)
    boxes = [m.bbox for m in store.all_meta().values() if m.bbox]
    bbox = (
        [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
        if boxes else [-180.0, -90.0, 180.0, 90.0]
    )
    return resources(found, bbox, store_key, registry_path, settings.server.suppression_k)
