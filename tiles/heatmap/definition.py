"""Heatmap tilesets: what each one shows, read from the `heatmap:` section of the indicator registry.

Every indicator of `layers/indicators/registry.yml` gets a tileset `h3_<indicator>` of H3 hexagons
carrying `cell` (the H3 id), `count`, `sum` (summed indicators) and `density` per km². The H3
resolution comes from the WebMercator zoom by the registry's one `resolutions` table, whatever tile
matrix set is asked (through `Grid.web_zoom`). The registry's `layers` map names, for a layer
whose individual features start at its `zoom.min`, the indicator its hexagons show below that
zoom: in the dataset tileset, the layer's own tileset and its style, so a low-zoom tile of 15,000
cameras is a few hundred hexagons, never a truncated pile of points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gis import hexagons
from gis.catalog import Attribute, AttrType, Catalog, GeometryType, Layer, Style, ZoomRange
from gis.stats.indicators import Indicator, Indicators

PREFIX = "h3_"
FILL = {"fill-opacity": 0.75, "fill-outline-color": "rgba(255,255,255,0.15)"}


class HeatmapSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resolutions: dict[int, int]  # from this WebMercator zoom on (until the next key): this H3 resolution
    zoom: ZoomRange
    layers: dict[str, str] = Field(default_factory=dict)  # layer id -> indicator id

    @model_validator(mode="after")
    def _sane(self) -> "HeatmapSettings":
        if not self.resolutions or min(self.resolutions) > self.zoom.min:
            raise ValueError("heatmap.resolutions must start at or below heatmap.zoom.min")
        if any(not 0 <= r <= hexagons.FINEST_RES for r in self.resolutions.values()):
            raise ValueError(f"heatmap.resolutions: H3 resolutions run 0..{hexagons.FINEST_RES}")
        return self

    def resolution(self, web_zoom: int) -> int:
        """The H3 resolution of hexagons at a WebMercator zoom: one table for every heatmap."""
        below = [z for z in self.resolutions if z <= web_zoom]
        return self.resolutions[max(below)] if below else self.resolutions[min(self.resolutions)]


@dataclass(frozen=True)
class Heatmap:
    """One indicator's hexagons; `layer` is what tile metadata, TileJSON and styles describe."""

    indicator: Indicator
    layer: Layer  # synthetic: a polygon layer named h3_<indicator> with cell/count/sum/density
    settings: HeatmapSettings

    @property
    def id(self) -> str:
        return self.layer.id

    @property
    def source(self) -> str:
        return self.indicator.layer

    @property
    def protected(self) -> bool:
        return self.indicator.suppress

    def resolution(self, web_zoom: int) -> int:
        return self.settings.resolution(web_zoom)

    def below(self, max_zoom: int) -> "Heatmap":
        """The same hexagons shown only up to `max_zoom` (under a layer's individual features)."""
        zoom = ZoomRange(min=min(self.layer.zoom.min, max_zoom), max=max_zoom)
        return Heatmap(self.indicator, self.layer.model_copy(update={"zoom": zoom}), self.settings)


def load_heatmaps(settings, catalog: Catalog) -> "Heatmaps | None":
    """The heatmaps beside the indicator registry (`heatmaps.yml`), or None when it has none."""
    registry = settings.server.indicator_registry
    path = registry.parent / "heatmaps.yml"
    if not (registry.is_file() and path.is_file()):
        return None
    return Heatmaps.load(path, Indicators.load(registry, catalog), catalog)


def features_from(layer: Layer, individual_access: bool = False) -> int:
    """The WebMercator zoom where a layer's hexagons give way to its individual features.

    The layer's own `zoom.min` for everyone today; the hook where a role may see features
    earlier (or never) once roles exist."""
    return layer.zoom.min


def _attributes(indicator: Indicator) -> list[Attribute]:
    attrs = [
        Attribute(name="cell", type=AttrType.string, description="H3 cell id (hexadecimal)"),
        Attribute(name="count", type=AttrType.integer, description=f"{indicator.name}: features in the cell"),
    ]
    if indicator.summed:
        attrs.append(
            Attribute(name="sum", type=AttrType.number, unit=indicator.unit, description=f"{indicator.name} in the cell")
        )
    attrs.append(
        Attribute(name="density", type=AttrType.number, unit=f"{indicator.unit}/km2", description="value per km2 of the cell")
    )
    return attrs


def _layer(indicator: Indicator, settings: HeatmapSettings) -> Layer:
    return Layer(
        id=PREFIX + indicator.id,
        title=f"{indicator.name} (hexagons)",
        title_zh=f"{indicator.name_zh}（六边形）",
        description=f"{indicator.definition} Counted in H3 cells; the resolution follows the zoom.",
        geometry=GeometryType.Polygon,
        attributes=_attributes(indicator),
        zoom=settings.zoom,
        style=Style(type="fill", paint=dict(FILL)),
    )


class Heatmaps:
    """Every indicator's heatmap, and which layers show hexagons below their features."""

    def __init__(self, settings: HeatmapSettings, indicators: Indicators, catalog: Catalog):
        self.settings = settings
        self.by_id: dict[str, Heatmap] = {}
        for indicator in indicators:
            heatmap = Heatmap(indicator, _layer(indicator, settings), settings)
            self.by_id[heatmap.id] = heatmap
        self.under_layer: dict[str, Heatmap] = {}
        for layer_id, indicator_id in settings.layers.items():
            if layer_id not in catalog:
                raise ValueError(f"heatmap.layers: no layer {layer_id!r}")
            heatmap = self.by_id.get(PREFIX + indicator_id)
            if heatmap is None or heatmap.source != layer_id:
                raise ValueError(f"heatmap.layers.{layer_id}: {indicator_id!r} is not an indicator of that layer")
            switch = features_from(catalog[layer_id])
            if switch > settings.zoom.min:
                self.under_layer[layer_id] = heatmap.below(switch - 1)

    @classmethod
    def load(cls, path: Path, indicators: Indicators, catalog: Catalog) -> "Heatmaps":
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            settings = HeatmapSettings.model_validate(document.get("heatmap") or {})
        except Exception as err:
            raise ValueError(f"{path.name}: heatmap: {err}") from err
        return cls(settings, indicators, catalog)

    def __iter__(self):
        return iter(self.by_id.values())

    def of_source(self, layer_id: str) -> list[Heatmap]:
        return [h for h in self.by_id.values() if h.source == layer_id]
