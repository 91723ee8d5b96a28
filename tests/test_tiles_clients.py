"""Other decoders read our tiles as we do: GDAL's MVT driver and MapLibre's (@mapbox/vector-tile).

Tiles are fetched from the live server and written as {z}/{x}/{y}.pbf, the layout GDAL georeferences
(EPSG:3857); each client's reading is compared with mapbox_vector_tile's: layer names, feature
counts, ids, properties and (MapLibre) vertices.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import shapely

from tests.oracle import read_layer
from tests.tiles_support import BUFFER, decode, tile_merc_bounds, tile_of

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def tiles(live_server, store, tmp_path_factory) -> list[tuple[Path, str, int, int, int, bytes]]:
    """A handful of real tiles on disk: (file, url, z, x, y, bytes)."""
    root = tmp_path_factory.mktemp("mvt")
    camera = read_layer(store, "cameras")[5].geom
    component = read_layer(store, "urban_components")[5].geom
    wanted = [
        ("/tiles", 14, camera),
        ("/tiles", 16, camera),
        ("/collections/buildings/tiles", 15, camera),
        ("/collections/cameras/tiles", 13, camera),
        ("/collections/urban_components/tiles", 18, component),
    ]
    out = []
    with httpx.Client(base_url=live_server, timeout=60) as http:
        for i, (prefix, z, point) in enumerate(wanted):
            x, y = tile_of(point.x, point.y, z)
            url = f"{live_server}{prefix}/WebMercatorQuad/{z}/{y}/{x}"
            response = http.get(url)
            assert response.status_code == 200, url
            path = root / str(i) / str(z) / str(x) / f"{y}.pbf"
            path.parent.mkdir(parents=True)
            path.write_bytes(response.content)
            out.append((path, url, z, x, y, response.content))
    return out


def ogrinfo(*args: str) -> str:
    if shutil.which("ogrinfo") is None:
        pytest.fail("ogrinfo (gdal-bin) is not installed: `make test` installs it (scripts/ensure-system)")
    result = subprocess.run(["ogrinfo", "-ro", "-al", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def gdal_reading(text: str) -> dict[str, dict]:
    """{layer: {"count", "ids", "extent"}} from `ogrinfo -al` output."""
    layers: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if m := re.match(r"Layer name: (\S+)", line):
            current = layers.setdefault(m[1], {"ids": [], "count": None, "extent": None})
        elif current is not None and (m := re.match(r"Feature Count: (\d+)", line)):
            current["count"] = int(m[1])
        elif current is not None and (m := re.match(r"Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", line)):
            current["extent"] = tuple(float(v) for v in m.groups())
        elif current is not None and (m := re.match(r"\s+mvt_id \(Integer64\) = (\d+)", line)):
            current["ids"].append(int(m[1]))
    return layers


def test_gdal_reads_the_same_layers_counts_ids_and_place(tiles):
    for path, _, z, x, y, data in tiles:
        ours = decode(data)
        # CLIP=NO: by default GDAL cuts geometries at the tile edge and skips features in the buffer
        gdal = gdal_reading(ogrinfo("-oo", "CLIP=NO", f"MVT:{path}"))
        assert set(gdal) == set(ours), path
        minx, miny, maxx, maxy = tile_merc_bounds(z, x, y, BUFFER + 1)
        for layer, features in ours.items():
            assert gdal[layer]["count"] == len(features), (path, layer)
            assert sorted(gdal[layer]["ids"]) == sorted(features), (path, layer)
            # from the z/x/y.pbf name GDAL places the tile in EPSG:3857: inside the buffered tile
            ex0, ey0, ex1, ey1 = gdal[layer]["extent"]
            assert minx - 1 <= ex0 <= ex1 <= maxx + 1 and miny - 1 <= ey0 <= ey1 <= maxy + 1, (path, layer)


def test_gdal_reads_a_tile_straight_from_the_server(tiles):
    _, url, *_, data = tiles[0]
    # with a query string: a bare .../z/y/x URL makes GDAL look for a tile directory instead
    gdal = gdal_reading(ogrinfo("-so", f"MVT:/vsicurl/{url}?f=mvt"))
    ours = decode(data)
    assert {layer: info["count"] for layer, info in gdal.items()} == {layer: len(f) for layer, f in ours.items()}


def test_maplibre_decoder_reads_the_same_features(tiles, repo_root):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = repo_root / "tests" / "js" / "decode_tile.mjs"
    if not (repo_root / "node_modules" / "@mapbox" / "vector-tile").exists():
        pytest.fail("node_modules is missing: run `npm ci` (make test does) for @mapbox/vector-tile and pbf")
    result = subprocess.run(
        [node, str(script), *(str(t[0]) for t in tiles)], capture_output=True, text=True, timeout=60, cwd=repo_root
    )
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    compared = 0
    for path, *_, data in tiles:
        ours = decode(data)
        theirs = decoded[str(path)]
        assert set(theirs) == set(ours), path
        for layer, features in ours.items():
            js = {f["id"]: f for f in theirs[layer]["features"]}
            assert theirs[layer]["extent"] == 4096 and theirs[layer]["version"] == 2
            assert theirs[layer]["count"] == len(features) and set(js) == set(features), (path, layer)
            for fid, feature in features.items():
                assert js[fid]["properties"] == feature["properties"], (path, layer, fid)
                vertices = {tuple(p) for ring in js[fid]["geometry"] for p in ring}
                assert vertices == {tuple(c) for c in shapely.get_coordinates(feature["geometry"]).astype(int).tolist()}
                kind = feature["geometry"].geom_type.removeprefix("Multi")
                assert js[fid]["type"] == kind, (path, fid)
                compared += 1
    assert compared > 100
