"""OGC API - Tiles in /openapi: tile matrix sets, the tilesets a role may have, their tiles and styles.

What tiles/api.py (TileService._routes) serves, described per tileset as pygeoapi describes the
Features per collection: a tileset the caller's role may not have (gis.security.tiles) has no path
in its document, as it has none in its /collections.
"""

from __future__ import annotations

from gis.openapi.components import RETRY_AFTER, problem, ref
from gis.security.principal import Principal
from gis.security.tiles import visible_tileset
from tiles.engine import DATASET
from tiles.matrix import GRIDS
from tiles.metadata import TILE_MEDIA

TMS = "tileMatrixSetId"
_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _path(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


PARAMETERS = {
    TMS: _path(TMS, "the tile matrix set (tiling scheme)", {"type": "string", "enum": list(GRIDS)}),
    "tileMatrix": _path("tileMatrix", "the zoom level within the tile matrix set", {"type": "integer", "minimum": 0}),
    "tileRow": _path("tileRow", "the row, from the top", {"type": "integer", "minimum": 0}),
    "tileCol": _path("tileCol", "the column, from the left", {"type": "integer", "minimum": 0}),
    "tile-v": _query("v", "the tileset's data version (in the tile URLs of its metadata): with the current one the "
                     "answer may be cached for a year", {"type": "integer", "minimum": 0}),
    "tile-f": _query("f", "the tile format", {"type": "string", "enum": ["mvt", "pbf"], "default": "mvt"}),
    "tile-filter": _query("filter", "a CQL2 filter on the collection's queryables: only matching features are drawn",
                          {"type": "string"}),
    "tile-filter-lang": _query("filter-lang", "the language of filter",
                               {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}),
    "tile-filter-crs": _query("filter-crs", "the CRS of the filter's coordinates",
                              {"type": "string", "enum": [_CRS84, "http://www.opengis.net/def/crs/EPSG/0/4490"]}),
    "If-None-Match": {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                      "description": "the ETag of a tile held: 304 when it is still the same"},
}
_TILE_HEADERS = {
    "ETag": {"description": "a hash of the tile's bytes", "schema": {"type": "string"}},
    "Cache-Control": {"description": "a year, immutable, when the request named the current data version (v); "
                      "revalidate otherwise", "schema": {"type": "string"}},
}
_JSON = {"application/json": {"schema": {"type": "object"}}}
_UNKNOWN = problem("no such tileset for the caller's role, or no such tile matrix set")


def _ok(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def tile_operation(tileset_id: str, title: str, tag: str, filters: bool) -> dict:
    parameters = [ref("parameters", name) for name in (TMS, "tileMatrix", "tileRow", "tileCol", "tile-v", "tile-f")]
    if filters:
        parameters += [ref("parameters", name) for name in ("tile-filter", "tile-filter-lang", "tile-filter-crs")]
    parameters.append(ref("parameters", "If-None-Match"))
    return {
        "summary": f"A vector tile of {title}",
        "operationId": f"get{tileset_id}Tile",
        "tags": [tag],
        "parameters": parameters,
        "responses": {
            "200": {"description": "the tile (Mapbox Vector Tile)",
                    "headers": {**_TILE_HEADERS, "OneMap-Thinned": {
                        "description": "present when the tile kept only 1/N of its points to fit the tile budget",
                        "schema": {"type": "string"}}},
                    "content": {TILE_MEDIA: {"schema": {"type": "string", "format": "binary"}}}},
            "204": {"description": "an empty tile: nothing of the tileset there", "headers": _TILE_HEADERS},
            "304": {"description": "If-None-Match matched: the tile held is current", "headers": _TILE_HEADERS},
            "400": problem("a tile index that is not a non-negative integer, an unknown parameter, or a bad filter"),
            "404": problem("no such tileset for the caller's role, tile matrix set, or tile (outside the matrix)"),
            "503": problem("the store could not render the tile in time; retry", RETRY_AFTER),
        },
    }


def _family(prefix: str, key: str, title: str, tag: str, filters: bool) -> dict[str, dict]:
    tms = [ref("parameters", TMS)]
    return {
        prefix: {"get": {
            "summary": f"The tilesets of {title}, one per tile matrix set", "operationId": f"get{key}Tilesets",
            "tags": [tag], "responses": {"200": _ok("the tilesets list"), "404": _UNKNOWN},
        }},
        f"{prefix}/{{{TMS}}}": {"get": {
            "summary": f"The tileset metadata of {title}", "operationId": f"get{key}Tileset", "tags": [tag],
            "parameters": [*tms, _query("f", "json: the OGC tileset metadata; tilejson: TileJSON (WebMercatorQuad only)",
                                        {"type": "string", "enum": ["json", "tilejson"], "default": "json"})],
            "responses": {"200": _ok("the tileset metadata (or TileJSON)"), "404": _UNKNOWN},
        }},
        f"{prefix}/{{{TMS}}}/tilejson.json": {"get": {
            "summary": f"TileJSON 3.0.0 of {title} (WebMercatorQuad)", "operationId": f"get{key}TileJson", "tags": [tag],
            "parameters": tms,
            "responses": {"200": _ok("TileJSON"), "404": problem("no such tileset for the caller, or a tile matrix set other "
                                                                 "than WebMercatorQuad (TileJSON describes that one only)")},
        }},
        f"{prefix}/{{{TMS}}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}": {"get": tile_operation(key, title, tag, filters)},
    }


def _style(path: str, key: str, title: str, tag: str, style_id: str) -> dict[str, dict]:
    return {path: {"get": {
        "summary": f"The MapLibre style of {title}", "operationId": f"get{key}Style", "tags": [tag],
        "parameters": [_path("styleId", "the style", {"type": "string", "enum": [style_id]})],
        "responses": {"200": _ok("a MapLibre GL style (version 8) over this server's TileJSON, glyphs and tiles"),
                      "404": problem("no such style, or no such tileset for the caller's role")},
    }}}


def paths(tile_service, principal: Principal, titles: dict[str, str]) -> dict[str, dict]:
    """The tile paths `principal`'s role may use (`titles`: collection id -> title, for the summaries)."""
    out: dict[str, dict] = {
        "/tileMatrixSets": {"get": {
            "summary": "The tile matrix sets (tiling schemes) of the tiles", "operationId": "getTileMatrixSets",
            "tags": ["tiles"], "responses": {"200": _ok("the list, with links to each")},
        }},
        f"/tileMatrixSets/{{{TMS}}}": {"get": {
            "summary": "A tile matrix set's definition (OGC Two Dimensional Tile Matrix Set 2.0)",
            "operationId": "getTileMatrixSet", "tags": ["tiles"], "parameters": [ref("parameters", TMS)],
            "responses": {"200": _ok("the tile matrix set"), "404": problem("no such tile matrix set")},
        }},
    }
    out.update(_family("/tiles", "Dataset", "the whole city", "tiles", filters=False))
    out.update(_style("/styles/{styleId}/style.json", "Dataset", "the whole city", "tiles", "onemap"))
    for tileset_id, tileset in tile_service.engine.tilesets.items():
        if tileset_id == DATASET:
            continue
        shown = visible_tileset(tileset, principal)
        if shown is None:
            continue
        title = titles.get(tileset_id) or tileset.layers[0].title
        # a heatmap of people takes no filter: two filtered views subtracted could isolate someone
        filters = not any(h.protected and h.id == tileset_id for h in shown.heat)
        prefix = f"/collections/{tileset_id}"
        out.update(_family(f"{prefix}/tiles", tileset_id, title, tileset_id, filters))
        out.update(_style(f"{prefix}/styles/{{styleId}}/style.json", tileset_id, title, tileset_id, "default"))
    return out


def tilesets(tile_service, principal: Principal) -> list[str]:
    """The collection tilesets the role may have (no dataset): for tags and the viewer."""
    return [
        tileset_id for tileset_id, tileset in tile_service.engine.tilesets.items()
        if tileset_id != DATASET and visible_tileset(tileset, principal) is not None
    ]
