"""TileJSON 3.0.0 and the MapLibre style documents: well-formed, and pointing at real tiles.

A map client reads the style, follows its source to the TileJSON, expands the `tiles` template and
draws the style layers from the tiles' source-layers. Each link of that chain is followed here.
"""

from __future__ import annotations

import httpx
import pytest
import yaml

from tests.oracle import AGGREGATE_ONLY, read_layer, readable_layers
from tests.tiles_support import decode, tile_of

TILESETS = [("/tiles", "onemap"), ("/collections/cameras/tiles", "cameras"), ("/collections/buildings/tiles", "buildings")]


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def expand(template: str, z: int, x: int, y: int) -> str:
    assert {"{z}", "{x}", "{y}"} <= {part for part in ("{z}", "{x}", "{y}") if part in template}
    return template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))


@pytest.mark.parametrize(("prefix", "tileset"), TILESETS, ids=[t for _, t in TILESETS])
def test_tilejson_3_is_well_formed_and_its_template_resolves_to_tiles(
    http, store, live_server, repo_root, prefix, tileset
):
    doc = http.get(f"{prefix}/WebMercatorQuad/tilejson.json").json()
    assert doc["tilejson"] == "3.0.0"
    assert isinstance(doc["tiles"], list) and doc["tiles"] and all(t.startswith(live_server) for t in doc["tiles"])
    assert doc.get("scheme", "xyz") == "xyz"
    minzoom, maxzoom = doc["minzoom"], doc["maxzoom"]
    assert 0 <= minzoom <= maxzoom <= 30
    west, south, east, north = doc["bounds"]
    assert -180 <= west < east <= 180 and -85.06 <= south < north <= 85.06
    lon, lat, zoom = doc["center"]
    assert west <= lon <= east and south <= lat <= north and minzoom <= zoom <= maxzoom
    layers = {layer["id"]: layer for layer in doc["vector_layers"]}
    published = {layer.id for layer in readable_layers(store)}
    # below its features, a layer listed in heatmaps.yml shows the hexagons of its indicator
    under = yaml.safe_load((repo_root / "layers/indicators/heatmaps.yml").read_text())["heatmap"]["layers"]
    carried = published if tileset == "onemap" else {tileset}
    # the public sees aggregate-only layers (population) as hexagons only, in the dataset's tiles
    hexagons_of = carried | (set(AGGREGATE_ONLY) if tileset == "onemap" else set())
    assert set(layers) == carried | {f"h3_{under[layer]}" for layer in hexagons_of if layer in under}
    for layer_id, layer in layers.items():
        if layer_id.startswith("h3_"):
            assert set(layer["fields"]) <= {"cell", "count", "sum", "density"} and "count" in layer["fields"]
            continue
        # never a secret; personal classes go out masked (tests/test_security_masking.py)
        public = {a.name for a in store.catalog[layer_id].attributes if a.sensitivity.value != "secret"}
        assert set(layer["fields"]) == public
        assert set(layer["fields"].values()) <= {"Number", "String", "Boolean"}
        assert minzoom <= layer["minzoom"] <= layer["maxzoom"]
    # the template, expanded at a camera's tile, gives an MVT tile whose layers are vector_layers
    camera = read_layer(store, "cameras")[0].geom
    z = max(minzoom, 15)
    x, y = tile_of(camera.x, camera.y, z)
    response = http.get(expand(doc["tiles"][0], z, x, y))
    assert response.status_code == 200
    assert set(decode(response.content)) <= set(layers)


def test_tilejson_is_for_web_mercator_only(http):
    assert http.get("/tiles/CGCS2000Quad/tilejson.json").status_code == 404


@pytest.mark.parametrize(
    ("style_path", "tileset"),
    [("/styles/onemap/style.json", "onemap"), ("/collections/cameras/styles/default/style.json", "cameras")],
)
def test_style_sources_and_layers_reference_real_tiles_and_source_layers(http, store, style_path, tileset):
    style = http.get(style_path).json()
    assert style["version"] == 8
    assert "{fontstack}" in style["glyphs"] and "{range}" in style["glyphs"]
    sources = style["sources"]
    assert sources and all(s["type"] == "vector" for s in sources.values())
    source_layers = {}
    for name, source in sources.items():
        tilejson = http.get(source["url"]).json()
        assert tilejson["tilejson"] == "3.0.0"
        source_layers[name] = {layer["id"] for layer in tilejson["vector_layers"]}
        camera = read_layer(store, "cameras")[0].geom
        x, y = tile_of(camera.x, camera.y, 16)
        tile = http.get(expand(tilejson["tiles"][0], 16, x, y))
        assert tile.status_code == 200 and set(decode(tile.content)) <= source_layers[name]
    ids = [layer["id"] for layer in style["layers"]]
    assert len(ids) == len(set(ids))
    drawn = set()
    for layer in style["layers"]:
        assert layer["type"] in {"background", "fill", "fill-extrusion", "line", "circle", "symbol", "heatmap", "raster", "hillshade"}
        if layer["type"] == "background":
            continue
        assert layer["source"] in sources
        assert layer["source-layer"] in source_layers[layer["source"]], layer["id"]
        if layer["source-layer"].startswith("h3_"):  # hexagons: tests/test_heatmap_tiles.py
            continue
        catalog_layer = store.catalog[layer["source-layer"]]
        assert layer["minzoom"] == catalog_layer.zoom.min and layer["maxzoom"] > catalog_layer.zoom.max
        drawn.add(layer["source-layer"])
    published = {layer.id for layer in readable_layers(store)}
    assert drawn == (published if tileset == "onemap" else {tileset})


def test_an_unknown_style_is_a_404_problem(http):
    response = http.get("/collections/cameras/styles/nope/style.json")
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/problem+json")
