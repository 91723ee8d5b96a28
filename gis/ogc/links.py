"""The links that lead a client from the landing page to everything OneMap serves.

pygeoapi writes the landing page and the collection documents from its configuration, where
OneMap's tiles and styles do not appear: generic clients (GDAL's OGCAPI driver, QGIS, OWSLib)
find tiles only by the relation types of OGC API - Tiles, so those links are added here, for
the caller (a collection whose tiles a role may not have gets no tile links). pygeoapi's
`tiling-schemes` links name `/TileMatrixSets`, a path of pygeoapi's own server that OneMap does
not serve: they are pointed at OneMap's `/tileMatrixSets`.
"""

from __future__ import annotations

from collections.abc import Callable

REL = "http://www.opengis.net/def/rel/ogc/1.0/"
TILESETS_VECTOR = REL + "tilesets-vector"
TILING_SCHEMES = REL + "tiling-schemes"
STYLE_MEDIA = "application/vnd.mapbox.style+json"
JSON = "application/json"
HTML = "text/html"
# the dataset's style and tiles, as tiles.api serves them
DATASET_STYLE = "/styles/onemap/style.json"
COLLECTION_STYLE = "default"


def style_path(collection_id: str | None) -> str:
    """Where the style of a collection's tiles (None: the whole city's) is served."""
    if collection_id is None:
        return DATASET_STYLE
    return f"/collections/{collection_id}/styles/{COLLECTION_STYLE}/style.json"


def style_link(base: str, collection_id: str | None, title: str) -> dict:
    return {"rel": "stylesheet", "type": STYLE_MEDIA, "title": title, "href": base + style_path(collection_id)}


class Links:
    """Adds OneMap's links to pygeoapi's JSON documents. `has_tiles(id)` says whether the current
    caller may have the tiles of a collection (None for the dataset); `pages` are OneMap's own
    HTML pages to offer from the landing page, as (path, title)."""

    def __init__(
        self,
        base: str,
        has_tiles: Callable[[str | None], bool] | None = None,
        pages: tuple[tuple[str, str], ...] = (),
        viewer: Callable[[str | None], str | None] | None = None,
        services: tuple[tuple[str, str, Callable[[], bool]], ...] = (),
    ):
        self.base = base
        self.has_tiles = has_tiles or (lambda _collection: False)
        self.pages = pages
        self.viewer = viewer  # a collection's (None: the city's) map viewer page, if served (gis.web)
        self.services = services  # OneMap's JSON services as (path, title, whether the caller may use it)

    def landing(self, document: dict) -> dict:
        base = self.base
        links = [link for link in document.get("links", []) if link.get("rel") != TILING_SCHEMES]
        if self.has_tiles(None):
            links += [
                {"rel": TILING_SCHEMES, "type": JSON, "title": "Tiling schemes (tile matrix sets)",
                 "href": f"{base}/tileMatrixSets"},
                {"rel": TILESETS_VECTOR, "type": JSON, "title": "Vector tilesets of the whole city",
                 "href": f"{base}/tiles"},
                style_link(base, None, "The city's map style (MapLibre)"),
                {"rel": "describedby", "type": JSON, "title": "TileJSON of the city's tiles",
                 "href": f"{base}/tiles/WebMercatorQuad/tilejson.json"},
            ]
        links.append({"rel": "related", "type": JSON, "title": "Indicator registry (statistics)",
                      "href": f"{base}/stats/indicators"})
        links += [{"rel": "related", "type": JSON, "title": title, "href": base + path}
                  for path, title, usable in self.services if usable()]
        links += [{"rel": "related", "type": HTML, "title": title, "href": base + path} for path, title in self.pages]
        viewer = self.viewer(None) if self.viewer else None
        if viewer:
            links.append({"rel": "preview", "type": HTML, "title": "Map viewer of the whole city", "href": base + viewer})
        document["links"] = links
        return document

    def collections(self, document: dict) -> dict:
        for collection in document.get("collections", []):
            self.collection(collection)
        return document

    def collection(self, document: dict) -> dict:
        collection_id = document.get("id")
        if not isinstance(collection_id, str) or not self.has_tiles(collection_id):
            return document
        base, path = self.base, f"{self.base}/collections/{collection_id}"
        links = document.setdefault("links", [])
        links += [
            {"rel": TILESETS_VECTOR, "type": JSON, "title": "Vector tilesets", "href": f"{path}/tiles"},
            style_link(base, collection_id, "Map style (MapLibre)"),
            {"rel": "describedby", "type": JSON, "title": "TileJSON",
             "href": f"{path}/tiles/WebMercatorQuad/tilejson.json"},
        ]
        viewer = self.viewer(collection_id) if self.viewer else None
        if viewer:
            links.append({"rel": "preview", "type": HTML, "title": "Map viewer", "href": base + viewer})
        return document
