"""MapLibre style documents (version 8) built from the layers' `style` fragments.

Sources point at OneMap's own TileJSON and glyphs at a OneMap path (served by a later issue):
a style never names an external URL, so the map works on a network with no internet access.
Layer `maxzoom` in MapLibre is exclusive, so a layer shown up to zoom.max gets zoom.max + 1.
"""

from __future__ import annotations

from gis.catalog import Layer
from tiles.engine import Tileset

GLYPHS = "/fonts/{fontstack}/{range}.pbf"
_ORDER = {"fill": 0, "fill-extrusion": 1, "line": 2, "heatmap": 3, "circle": 4, "symbol": 5}


def _style_layer(layer: Layer, source: str, paint: tuple[dict, dict] | None = None) -> dict:
    entry = {
        "id": layer.id,
        "type": layer.style.type,
        "source": source,
        "source-layer": layer.id,
        "minzoom": layer.zoom.min,
        "maxzoom": min(layer.zoom.max + 1, 24),
        "metadata": {"onemap:title": layer.title, "onemap:title_zh": layer.title_zh},
    }
    if paint is not None:  # a heatmap's: colours from the data (tiles.heatmap.style)
        entry["paint"] = paint[0]
        entry["metadata"].update(paint[1])
    elif layer.style.paint:
        entry["paint"] = dict(layer.style.paint)
    if layer.style.layout:
        entry["layout"] = dict(layer.style.layout)
    return entry


def style(
    base: str, tileset: Tileset, tilejson_url: str, name: str, paints: dict[str, tuple[dict, dict]] | None = None
) -> dict:
    source = "onemap"
    layers = sorted(tileset.layers, key=lambda layer: _ORDER.get(layer.style.type, 9))
    return {
        "version": 8,
        "name": name,
        "sources": {source: {"type": "vector", "url": tilejson_url}},
        "glyphs": base + GLYPHS,
        "layers": [
            {"id": "background", "type": "background", "paint": {"background-color": "#0b1a2e"}},
            *(_style_layer(layer, source, (paints or {}).get(layer.id)) for layer in layers),
        ],
    }
