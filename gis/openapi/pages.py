"""The pages for people in /openapi: the wall (gis/wall/routes.py), its assets and glyphs, the map viewers.

The wall's page and its embed snippet take the view in the query (gis.wall.view.parse); the
viewers are HTML pages over the tiles and styles (gis.web). Both are served to every role: a page
shows what the caller's role may read, and a viewer of a collection the role may not read is a 404,
so its document names only the collections the role may read.
"""

from __future__ import annotations

from gis.openapi.components import problem
from gis.wall.routes import MAPLIBRE_FILES
from gis.wall.view import LANGUAGES, MAX_REFRESH, THEMES


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_HTML = {"text/html": {"schema": {"type": "string"}}}
_VIEW = [
    _query("layers", "the layers to show, comma-separated (default: the usual base layers the caller may read)",
           {"type": "string"}),
    _query("heatmap", "a heatmap tileset to show (h3_<indicator>)", {"type": "string"}),
    _query("center", "lon,lat in degrees", {"type": "string", "pattern": r"^-?[0-9.]+,-?[0-9.]+$"}),
    _query("zoom", "the zoom level", {"type": "number", "minimum": 0, "maximum": 22}),
    _query("bearing", "the bearing in degrees", {"type": "number", "minimum": -360, "maximum": 360}),
    _query("pitch", "the pitch in degrees (buildings are extruded)", {"type": "number", "minimum": 0, "maximum": 85}),
    _query("theme", "the colour theme", {"type": "string", "enum": list(THEMES), "default": "dark"}),
    _query("refresh", "seconds between refreshes (0: never)", {"type": "integer", "minimum": 0, "maximum": MAX_REFRESH}),
    _query("kiosk", "1: no controls, for the wall's kiosk browser", {"type": "string", "enum": ["0", "1"]}),
    _query("lang", "the page's language", {"type": "string", "enum": list(LANGUAGES), "default": "zh"}),
    _query("kpis", "the indicators of the KPI panel, comma-separated", {"type": "string"}),
    _query("token", "a key of a role whose keys may travel in the URL (the wall role); passed on to every request "
           "the page makes", {"type": "string"}),
]
_BAD_VIEW = problem("a view parameter not understood or out of range, or a layer or heatmap the role may not show")


def wall() -> dict[str, dict]:
    return {
        "/wall": {"get": {
            "summary": "The command-centre wall: a full-screen map of the city with its KPIs",
            "operationId": "getWall", "tags": ["pages"], "parameters": _VIEW,
            "responses": {"200": {"description": "the page", "content": _HTML}, "400": _BAD_VIEW},
        }},
        "/wall/embed": {"get": {
            "summary": "The iframe snippet that embeds this wall view in another page",
            "operationId": "getWallEmbed", "tags": ["pages"], "parameters": _VIEW,
            "responses": {"200": {"description": "the page with the snippet", "content": _HTML}, "400": _BAD_VIEW},
        }},
        "/wall/maplibre/{name}": {"get": {
            "summary": "MapLibre GL JS, served by OneMap itself (from the npm package)",
            "operationId": "getMapLibre", "tags": ["pages"],
            "parameters": [{"name": "name", "in": "path", "required": True, "description": "the file",
                            "schema": {"type": "string", "enum": list(MAPLIBRE_FILES)}}],
            "responses": {
                "200": {"description": "the file", "content": {"application/javascript": {"schema": {"type": "string"}},
                                                               "text/css": {"schema": {"type": "string"}},
                                                               "application/json": {"schema": {"type": "object"}}}},
                "404": problem("not a MapLibre file the wall serves"),
                "503": problem("MapLibre GL JS is not installed on this server (npm ci)"),
            },
        }},
        "/fonts/{fontstack}/{range}": {"get": {
            "summary": "Glyphs for map labels (every fontstack is drawn with the one font the server ships)",
            "operationId": "getGlyphs", "tags": ["pages"],
            "parameters": [
                {"name": "fontstack", "in": "path", "required": True, "description": "the font names, comma-separated",
                 "schema": {"type": "string"}},
                {"name": "range", "in": "path", "required": True,
                 "description": "256 code points from a multiple of 256, as START-END.pbf, e.g. 0-255.pbf",
                 "schema": {"type": "string", "pattern": r"^[0-9]+-[0-9]+\.pbf$"}},
            ],
            "responses": {
                "200": {"description": "the glyphs (protocol buffers, MapLibre's glyph format)",
                        "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}},
                "404": problem("not a glyph range of 256 code points"),
                "503": problem("the server's font is not installed"),
            },
        }},
    }


def viewers(collections: list[str], titles: dict[str, str]) -> dict[str, dict]:
    """`/viewer` and one `/collections/{id}/viewer` per collection in `collections`."""
    lang = [_query("lang", "the page's language: zh or en (a tag such as zh-CN counts by its first part); "
                   "else Accept-Language", {"type": "string", "enum": ["zh", "en", "zh-CN", "en-US"]})]
    bad_lang = problem("lang is neither zh nor en")
    out = {"/viewer": {"get": {
        "summary": "A map viewer of the whole city, in OneMap's style", "operationId": "getViewer", "tags": ["pages"],
        "parameters": lang, "responses": {"200": {"description": "the page", "content": _HTML}, "400": bad_lang},
    }}}
    for collection in collections:
        out[f"/collections/{collection}/viewer"] = {"get": {
            "summary": f"A map viewer of {titles.get(collection, collection)}", "operationId": f"get{collection}Viewer",
            "tags": [collection], "parameters": lang,
            "responses": {"200": {"description": "the page", "content": _HTML}, "400": bad_lang,
                          "404": problem("no such collection for the caller's role")},
        }}
    return out
