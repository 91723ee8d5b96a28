"""Heatmap tiles as a map client sees them: H3 hexagons in place in every tile matrix set, the
same from the SQL and the city-wide paths, filters equal to the indicators they spell out, a
colour ramp from the data's quantiles, and points that give way to hexagons below their zoom.
"""

from __future__ import annotations

import math

import h3
import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import settings_for
from tests.heatmap_support import hexagons, mvt_id
from tests.oracle import read_layer
from tests.tiles_support import EXTENT, decode, tile_of, to_units

K = 10


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def city(store):
    return store.layer_meta("districts").bbox


@pytest.fixture(scope="module")
def heatmap_config(repo_root):
    return yaml.safe_load((repo_root / "layers/indicators/heatmaps.yml").read_text())["heatmap"]


def centre(bbox) -> tuple[float, float]:
    return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2


def geographic_units(lon, lat, z, x, y, span0):
    """Lon/lat to tile units (y down) in a geographic quad whose level-0 tile spans span0 degrees."""
    span = span0 / 2**z
    minx, maxy = -180 + x * span, 90 - y * span
    return (lon - minx) * EXTENT / span, (maxy - lat) * EXTENT / span


GRIDS = {  # tile matrix set -> (level, tile of a lon/lat, lon/lat to tile units)
    "WebMercatorQuad": (10, lambda lon, lat, z: tile_of(lon, lat, z), to_units),
    # level 0 of WorldCRS84Quad is two 180° tiles; CGCS2000Quad (Tianditu c) starts with them at level 1
    "WorldCRS84Quad": (9, lambda lon, lat, z: (int((lon + 180) // (180 / 2**z)), int((90 - lat) // (180 / 2**z))),
                       lambda lon, lat, z, x, y: geographic_units(lon, lat, z, x, y, 180)),
    "CGCS2000Quad": (10, lambda lon, lat, z: (int((lon + 180) // (360 / 2**z)), int((90 - lat) // (360 / 2**z))),
                     lambda lon, lat, z, x, y: geographic_units(lon, lat, z, x, y, 360)),
}


@pytest.mark.parametrize("tms", sorted(GRIDS))
def test_hexagons_are_the_h3_cells_boundaries_in_every_tile_matrix_set(http, city, tms):
    z, locate, units = GRIDS[tms]
    lon, lat = centre(city)
    x, y = locate(lon, lat, z)
    response = http.get(f"/collections/h3_buildings/tiles/{tms}/{z}/{y}/{x}")
    assert response.status_code == 200, response.text[:300]
    features = decode(response.content)["h3_buildings"]
    whole = 0
    for fid, feature in features.items():
        cell = feature["properties"]["cell"]
        assert fid == mvt_id(cell)
        expected = [units(lng, la, z, x, y) for la, lng in h3.cell_to_boundary(cell)]
        if not all(0 <= u <= EXTENT and 0 <= v <= EXTENT for u, v in expected):
            continue  # cut by the tile's edge
        whole += 1
        ring = list(feature["geometry"].exterior.coords)[:-1]
        assert len(ring) == len(expected), cell
        for u, v in expected:  # every vertex of the cell, on the integer grid
            assert min(math.hypot(u - a, v - b) for a, b in ring) <= 0.75, (cell, (u, v))
    assert whole >= 3


@pytest.mark.parametrize("indicator", ["residents", "key_persons", "floor_area", "key_places", "urban_components"])
def test_the_sql_path_and_the_city_wide_cells_give_the_same_tiles(store, city, indicator):
    from tiles.api import TileService  # the code under test, read both ways
    from tiles.matrix import GRIDS as TILE_GRIDS

    service = TileService(store, settings_for(store.settings.database.database_url), cache_dir=None)
    grid = TILE_GRIDS["WebMercatorQuad"]
    lon, lat = centre(city)
    compared = 0
    for z in (8, 11, 13):
        cx, cy = tile_of(lon, lat, z)
        for x in range(cx - 1, cx + 2):
            for y in range(cy - 1, cy + 2):
                plan = service.engine.plan(f"h3_{indicator}", grid, z, x, y)
                service.engine.heat_tiles.in_memory = True
                memory = service.engine.render(plan)
                service.engine.heat_tiles.in_memory = False
                sql = service.engine.render(plan)
                assert memory.data == sql.data, (z, x, y)
                compared += bool(memory.data)
    assert compared >= 5


@pytest.mark.parametrize("z", (10, 12))
def test_a_filter_on_hexagons_equals_the_indicator_it_spells_out(http, city, z):
    filtered = hexagons(
        http, "/collections/h3_key_places/tiles", "h3_key_places", city, z,
        filter="category IN ('school', 'kindergarten')",
    )
    schools = hexagons(http, "/collections/h3_schools/tiles", "h3_schools", city, z)
    assert filtered == schools and schools


def test_filters_on_hexagons_of_people_are_refused(http, city):
    x, y = tile_of(*centre(city), 10)
    response = http.get(f"/collections/h3_residents/tiles/WebMercatorQuad/10/{y}/{x}", params={"filter": "age_band = '80+'"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "differencing" in response.json()["detail"] or "subtracted" in response.json()["detail"]


def test_the_colour_ramp_runs_through_the_density_quantiles_of_the_cells_shown(http):
    style = http.get("/collections/h3_residents/styles/default/style.json").json()
    (layer,) = [entry for entry in style["layers"] if entry.get("source-layer") == "h3_residents"]
    meta = layer["metadata"]
    quantiles = meta["onemap:quantiles"]
    assert meta["onemap:value"] == "density" and layer["type"] == "fill"
    for res in ("7", "8", "9"):
        body = http.get("/stats", params={"indicator": "residents", "by": "h3", "res": res}).json()
        density = np.array([g["value"] / h3.cell_area(g["key"], "km^2") for g in body["groups"]])
        expected = sorted({float(f"{q:.6g}") for q in np.quantile(density, quantiles)})
        assert meta["onemap:breaks"][res] == pytest.approx(expected, rel=1e-5)
    colour = layer["paint"]["fill-color"]
    assert colour[:2] == ["step", ["zoom"]]
    outputs = colour[2::2]  # step: output, zoom, output, ...: one ramp per resolution
    assert len(outputs) == len(meta["onemap:breaks"])
    for ramp, stops in zip(outputs, meta["onemap:breaks"].values()):
        if len(stops) < 2:
            assert isinstance(ramp, str)  # one value everywhere: one colour
        else:
            assert ramp[:3] == ["interpolate", ["linear"], ["get", "density"]] and ramp[3::2] == stops


def layers_at(http, path: str, z: int, lon: float, lat: float) -> set[str]:
    x, y = tile_of(lon, lat, z)
    response = http.get(f"{path}/WebMercatorQuad/{z}/{y}/{x}")
    assert response.status_code in (200, 204)
    return set(decode(response.content))


def test_points_give_way_to_hexagons_below_the_layers_zoom(http, store, heatmap_config):
    layer = store.catalog["key_places"]
    indicator = heatmap_config["layers"]["key_places"]
    point = read_layer(store, "key_places")[0].geom
    switch = layer.zoom.min
    for path in ("/tiles", "/collections/key_places/tiles"):
        below = layers_at(http, path, switch - 1, point.x, point.y)
        at = layers_at(http, path, switch, point.x, point.y)
        assert f"h3_{indicator}" in below and "key_places" not in below
        assert "key_places" in at and f"h3_{indicator}" not in at
    style = http.get("/collections/key_places/styles/default/style.json").json()
    by_source = {entry.get("source-layer"): entry for entry in style["layers"]}
    assert by_source[f"h3_{indicator}"]["maxzoom"] == switch  # MapLibre's maxzoom is exclusive
    assert by_source["key_places"]["minzoom"] == switch


def test_a_low_zoom_tile_of_every_point_layer_is_small_and_whole(http, store, city):
    """Hexagons, not a truncated heap of points: no thinning header, and well under the budget."""
    for layer in ("key_places", "urban_components"):
        z = store.catalog[layer].zoom.min - 1
        rows = read_layer(store, layer)
        point = rows[len(rows) // 2].geom
        x, y = tile_of(point.x, point.y, z)
        response = http.get(f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}")
        assert response.status_code == 200
        assert "onemap-thinned" not in response.headers
        assert len(response.content) < 100_000
        assert set(decode(response.content)) == {f"h3_{layer}"}


def test_people_tiles_never_carry_a_hexagon_under_k(http, city):
    lon, lat = centre(city)
    for z in (12, 13, 14, 15):
        x0, y0 = tile_of(lon, lat, z)
        for x in range(x0 - 1, x0 + 2):
            for y in range(y0 - 1, y0 + 2):
                response = http.get(f"/collections/h3_key_persons/tiles/WebMercatorQuad/{z}/{y}/{x}")
                for feature in decode(response.content).get("h3_key_persons", {}).values():
                    assert feature["properties"]["count"] >= K


def test_tile_metadata_describes_the_hexagon_layers(http):
    doc = http.get("/collections/h3_floor_area/tiles/WebMercatorQuad").json()
    (layer,) = doc["layers"]
    assert layer["id"] == "h3_floor_area" and layer["geometryDimension"] == 2
    assert set(layer["propertiesSchema"]["properties"]) >= {"cell", "count", "sum", "density"}
    assert "boundingBox" in layer
    assert any(link["rel"] == "item" and "v=" in link["href"] for link in doc["links"])


def test_a_role_that_reads_people_sees_their_small_cells_and_the_public_does_not(http, store, live_server, city):
    from tests.security_support import api_key, client

    lon, lat = centre(city)
    z = 13
    cx, cy = tile_of(lon, lat, z)
    paths = [f"/collections/h3_key_persons/tiles/WebMercatorQuad/{z}/{y}/{x}"
             for x in range(cx - 2, cx + 3) for y in range(cy - 2, cy + 3)]

    def counts(session) -> list[int]:
        found = []
        for path in paths:
            response = session.get(path)
            assert response.status_code in (200, 204)
            found += [f["properties"]["count"] for f in decode(response.content).get("h3_key_persons", {}).values()]
        return found

    with client(live_server, api_key(store, "admin")) as admin:
        full = counts(admin)
    public = counts(http)
    assert any(c < K for c in full), "the admin reads population: no cell is withheld from them"
    assert all(c >= K for c in public) and sum(public) < sum(full)
