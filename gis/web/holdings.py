"""What the caller's role holds: the layers it may read with their feature counts, the indicators
it may use, and which layers have a map viewer.

A layer's count is numberMatched of `/collections/{id}/items` for the same caller: it is asked of
the same pygeoapi provider with the same (empty) query, so restrictions to streets or grids, the
count cache and the exact per-layer total kept by every write all apply exactly as there.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.catalog import Catalog, Layer
from gis.features.provider import OneMapProvider
from gis.ogc.config import provider as provider_definition
from gis.security.principal import current
from gis.security.tiles import visible_tileset
from gis.stats.indicators import Indicator, Indicators


@dataclass(frozen=True)
class Holding:
    layer: Layer
    count: int | None  # None: a restricted count that ran past the provider's budget, as in /items
    viewer: bool

    def title(self, lang: str) -> str:
        return self.layer.title_zh if lang == "zh" else self.layer.title


class Holdings:
    def __init__(self, catalog: Catalog, store_key: str, indicators: Indicators, tiles=None):
        self.catalog = catalog
        self.store_key = store_key
        self.indicators = indicators
        self.tiles = tiles

    def readable(self) -> list[Layer]:
        principal = current()
        return [layer for layer in self.catalog.published if principal.may_read_features(layer.id)]

    def layer(self, layer_id: str) -> Layer | None:
        """The layer if the caller may read it, else None (absent and forbidden look the same)."""
        return next((layer for layer in self.readable() if layer.id == layer_id), None)

    def has_viewer(self, layer_id: str) -> bool:
        """A viewer needs the layer's tiles as the caller may have them (gis.security.tiles)."""
        if self.tiles is None or self.layer(layer_id) is None:
            return False
        tileset = self.tiles.engine.tilesets.get(layer_id)
        return tileset is not None and visible_tileset(tileset, current()) is not None

    def city_viewer(self) -> bool:
        return self.tiles is not None

    def layers(self) -> list[Holding]:
        """Blocking (database): call in a worker thread with the request's context."""
        return [Holding(layer, self.count(layer), self.has_viewer(layer.id)) for layer in self.readable()]

    def count(self, layer: Layer) -> int | None:
        provider = OneMapProvider(provider_definition(layer, self.store_key))
        return provider.query(offset=0, limit=0, resulttype="hits").get("numberMatched")

    def usable_indicators(self) -> list[Indicator]:
        principal = current()
        return [i for i in self.indicators if principal.may_use_indicator(i.id, i.layer)]
