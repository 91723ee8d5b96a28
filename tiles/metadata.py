"""JSON documents describing the tiles: tile matrix sets, tileset lists, tileset metadata, TileJSON.

All are plain dicts built from the grids, the catalog and the layers' current metadata (bounds,
data version); nothing here touches the database. Tile URL templates carry the tileset's data
version (`?v=`), so a client that reloads metadata after an edit never mixes old and new tiles.
"""

from __future__ import annotations

from gis.catalog import AttrType, GeometryType, Layer
from gis.ogc.links import style_link
from gis.security.tiles import visible_attributes
from gis.storage.store import LayerMeta
from tiles.engine import Tileset
from tiles.generalise import POLICY
from tiles.matrix import EXTENT, GRIDS, Grid

TILE_MEDIA = "application/vnd.mapbox-vector-tile"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
OGC_TMS_URI = {
    "WebMercatorQuad": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
    "WorldCRS84Quad": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad",
}
_DIMENSION = {GeometryType.Point: 0, GeometryType.LineString: 1, GeometryType.Polygon: 2, GeometryType.MultiPolygon: 2}
_TILEJSON_TYPE = {AttrType.integer: "Number", AttrType.number: "Number", AttrType.boolean: "Boolean"}


def tileset_path(tileset: Tileset) -> str:
    return "/tiles" if tileset.is_dataset else f"/collections/{tileset.id}/tiles"


def tile_template(base: str, tileset: Tileset, grid: Grid, version: int, ogc: bool = True) -> str:
    names = "{tileMatrix}/{tileRow}/{tileCol}" if ogc else "{z}/{y}/{x}"
    return f"{base}{tileset_path(tileset)}/{grid.id}/{names}?v={version}"


def union_bbox(tileset: Tileset, meta: dict[str, LayerMeta]) -> tuple[float, float, float, float] | None:
    sources = [tileset.source_of(layer.id) for layer in tileset.layers]
    boxes = [meta[s].bbox for s in sources if s in meta and meta[s].bbox]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def tile_matrix_sets(base: str) -> dict:
    return {
        "tileMatrixSets": [
            {
                "id": grid.id,
                "title": grid.tms.title or grid.id,
                **({"uri": OGC_TMS_URI[grid.id]} if grid.id in OGC_TMS_URI else {}),
                "crs": str(grid.tms.crs.root if hasattr(grid.tms.crs, "root") else grid.tms.crs),
                "links": [
                    {"rel": "self", "type": "application/json", "href": f"{base}/tileMatrixSets/{grid.id}"},
                ],
            }
            for grid in GRIDS.values()
        ],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/tileMatrixSets"}],
    }


def tile_matrix_set(grid: Grid) -> dict:
    doc = grid.tms.model_dump(mode="json", exclude_none=True)
    if grid.id in OGC_TMS_URI:
        doc["uri"] = OGC_TMS_URI[grid.id]
    return doc


def _layer_zoom(grid: Grid, layer: Layer) -> tuple[int, int] | None:
    return grid.zoom_range_for(layer.zoom.min, layer.zoom.max)


def tileset_zoom(grid: Grid, tileset: Tileset) -> tuple[int, int] | None:
    ranges = [r for r in (_layer_zoom(grid, layer) for layer in tileset.layers) if r]
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None


def tilesets_list(base: str, tileset: Tileset, versions: dict[str, int], meta: dict[str, LayerMeta] | None = None) -> dict:
    path = tileset_path(tileset)
    entries = []
    for grid in GRIDS.values():
        entries.append(
            {
                "title": f"{tileset.id} on {grid.id}",
                "dataType": "vector",
                "crs": tile_matrix_set(grid).get("crs"),
                "tileMatrixSetURI": OGC_TMS_URI.get(grid.id, f"{base}/tileMatrixSets/{grid.id}"),
                "links": [
                    {"rel": "self", "type": "application/json", "href": f"{base}{path}/{grid.id}"},
                    {"rel": REL_TILING_SCHEME, "type": "application/json", "href": f"{base}/tileMatrixSets/{grid.id}"},
                    {
                        "rel": "item",
                        "type": TILE_MEDIA,
                        "templated": True,
                        "href": tile_template(base, tileset, grid, versions.get(tileset.id, 0)),
                    },
                ],
            }
        )
    doc = {"tilesets": entries, "links": [{"rel": "self", "type": "application/json", "href": f"{base}{path}"}]}
    bbox = union_bbox(tileset, meta or {}) if tileset.is_dataset else None
    if bbox:
        # The dataset's tiles have no collection document to describe them: this list says what
        # a geodata resource would (its extent, its vector tilesets), which is what GDAL's OGCAPI
        # driver reads when it opens `OGCAPI:{base}/tiles` (without both it stops: "Missing bbox").
        doc["extent"] = {"spatial": {"bbox": [list(bbox)], "crs": CRS84}}
        doc["links"].append({"rel": REL_TILESETS_VECTOR, "type": "application/json", "href": f"{base}{path}"})
    return doc


def tileset_metadata(
    base: str, tileset: Tileset, grid: Grid, version: int, meta: dict[str, LayerMeta], budget: int
) -> dict:
    path = f"{tileset_path(tileset)}/{grid.id}"
    bbox = union_bbox(tileset, meta)
    layers = []
    for layer in tileset.layers:
        zoom = _layer_zoom(grid, layer)
        if zoom is None:
            continue
        source = tileset.source_of(layer.id)  # a heatmap covers its indicator layer's extent
        layer_bbox = meta.get(source).bbox if source in meta else None
        layers.append(
            {
                "id": layer.id,
                "title": layer.title,
                "description": layer.description,
                "dataType": "vector",
                "geometryDimension": _DIMENSION[layer.geometry],
                "minTileMatrix": str(zoom[0]),
                "maxTileMatrix": str(zoom[1]),
                **({"boundingBox": _bbox_doc(layer_bbox)} if layer_bbox else {}),
                "propertiesSchema": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "integer", "description": "feature id (also the MVT feature id)"},
                        **{a.name: a.json_schema() for a in visible_attributes(layer)},
                    },
                },
            }
        )
    doc: dict = {
        "title": f"{'OneMap' if tileset.is_dataset else tileset.layers[0].title} ({grid.id})",
        "dataType": "vector",
        "crs": tile_matrix_set(grid).get("crs"),
        "tileMatrixSetURI": OGC_TMS_URI.get(grid.id, f"{base}/tileMatrixSets/{grid.id}"),
        "layers": layers,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}{path}"},
            {"rel": REL_TILING_SCHEME, "type": "application/json", "href": f"{base}/tileMatrixSets/{grid.id}"},
            {"rel": "item", "type": TILE_MEDIA, "templated": True, "href": tile_template(base, tileset, grid, version)},
            style_link(base, None if tileset.is_dataset else tileset.id, "Map style (MapLibre)"),
        ],
        "x-onemap-dataVersion": version,
        "x-onemap-extent": EXTENT,
        "x-onemap-generalisation": {**POLICY, "tileBudgetBytes": budget},
    }
    if grid.id == "WebMercatorQuad":
        doc["links"].append(
            {"rel": "describedby", "type": "application/json", "title": "TileJSON", "href": f"{base}{path}/tilejson.json"}
        )
    zoom = tileset_zoom(grid, tileset)
    if bbox:
        doc["boundingBox"] = _bbox_doc(bbox)
    if zoom and bbox:
        limits = []
        for z in range(zoom[0], zoom[1] + 1):
            x0, y0, x1, y1 = grid.tile_range(z, bbox)
            limits.append({"tileMatrix": str(z), "minTileRow": y0, "maxTileRow": y1, "minTileCol": x0, "maxTileCol": x1})
        doc["tileMatrixSetLimits"] = limits
    return doc


def _bbox_doc(bbox: tuple[float, float, float, float]) -> dict:
    return {"lowerLeft": [bbox[0], bbox[1]], "upperRight": [bbox[2], bbox[3]], "crs": CRS84}


def tilejson(base: str, tileset: Tileset, version: int, meta: dict[str, LayerMeta]) -> dict:
    """TileJSON 3.0.0 for the WebMercatorQuad tiles of a tileset (the only set TileJSON can describe)."""
    grid = GRIDS["WebMercatorQuad"]
    bbox = union_bbox(tileset, meta) or (-180.0, -85.0511, 180.0, 85.0511)
    zoom = tileset_zoom(grid, tileset) or (0, 0)
    center_zoom = max(zoom[0], min(zoom[1], 12))
    return {
        "tilejson": "3.0.0",
        "name": "OneMap" if tileset.is_dataset else tileset.layers[0].title,
        "description": "All published OneMap layers" if tileset.is_dataset else tileset.layers[0].description,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [tile_template(base, tileset, grid, version, ogc=False)],
        "minzoom": zoom[0],
        "maxzoom": zoom[1],
        "bounds": list(bbox),
        "center": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, center_zoom],
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.title,
                "minzoom": layer.zoom.min,
                "maxzoom": layer.zoom.max,
                "fields": {a.name: _TILEJSON_TYPE.get(a.type, "String") for a in visible_attributes(layer)},
            }
            for layer in tileset.layers
        ],
    }
