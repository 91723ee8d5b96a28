"""What a tile request outside the data or the matrices answers: 204 for no features, problem JSON
(RFC 9457, with the OGC code/description too) for every request that cannot be a tile."""

from __future__ import annotations

import httpx
import pytest

from tests.tiles_support import assert_problem, tile_of


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def far_from_the_city(z: int) -> tuple[int, int]:
    return tile_of(-150.0, -60.0, z)  # the South Pacific


@pytest.mark.parametrize("path", ["/collections/cameras/tiles/WebMercatorQuad", "/tiles/WebMercatorQuad"])
def test_a_tile_with_no_feature_is_204_with_no_body(http, path):
    x, y = far_from_the_city(15)
    response = http.get(f"{path}/15/{y}/{x}")
    assert response.status_code == 204 and response.content == b""
    assert response.headers.get("etag")
    again = http.get(f"{path}/15/{y}/{x}")  # cached the same way
    assert again.status_code == 204 and again.headers["etag"] == response.headers["etag"]


def test_a_level_where_the_layer_is_not_shown_is_204_too(http, store):
    camera = store.catalog["cameras"]
    # cameras start at 12, their hexagons (layers/indicators/heatmaps.yml) at 5: nothing at 4
    z = min(camera.zoom.min, 5) - 1
    bbox = store.layer_meta("cameras").bbox
    x, y = tile_of((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, z)
    assert http.get(f"/collections/cameras/tiles/WebMercatorQuad/{z}/{y}/{x}").status_code == 204


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/collections/cameras/tiles/WebMercatorQuad/23/0/0", 404, ["zoom 23"]),
        ("/collections/cameras/tiles/WebMercatorQuad/3/0/8", 404, ["column 8"]),
        ("/collections/cameras/tiles/WebMercatorQuad/3/8/0", 404, ["row 8"]),
        ("/collections/cameras/tiles/WorldCRS84Quad/1/2/0", 404, ["row 2"]),
        ("/collections/cameras/tiles/CGCS2000Quad/0/0/0", 404, ["zoom 0"]),
        ("/collections/cameras/tiles/WebMercatorQuad/a/0/0", 400, ["z='a'"]),
        ("/collections/cameras/tiles/WebMercatorQuad/3/1.5/0", 400, ["y='1.5'"]),
        ("/collections/cameras/tiles/WebMercatorQuad/3/0/-1", 400, ["x='-1'"]),
        ("/tiles/WebMercatorQuad/3/0/x", 400, ["x='x'"]),
        ("/collections/cameras/tiles/NoSuchTMS/3/0/0", 404, ["nosuchtms"]),
        ("/tiles/GoogleMapsCompatible/3/0/0", 404, ["googlemapscompatible"]),
        ("/collections/no_such_layer/tiles/WebMercatorQuad/3/0/0", 404, ["no_such_layer"]),
        ("/collections/population/tiles/WebMercatorQuad/3/0/0", 404, ["population"]),
    ],
)
def test_requests_that_cannot_be_tiles_are_problems(http, path, status, words):
    assert_problem(http.get(path), status, *words)


@pytest.mark.parametrize(
    ("params", "words"),
    [({"f": "png"}, ["f='png'"]), ({"v": "latest"}, ["v='latest'"]), ({"colour": "red"}, ["colour"])],
)
def test_bad_tile_parameters_are_400(http, params, words):
    assert_problem(http.get("/collections/cameras/tiles/WebMercatorQuad/3/0/0", params=params), 400, *words)


def test_unknown_tile_matrix_set_metadata_is_a_404_problem(http):
    assert_problem(http.get("/tileMatrixSets/NoSuchTMS"), 404, "NoSuchTMS")
    assert_problem(http.get("/collections/cameras/tiles/NoSuchTMS"), 404, "NoSuchTMS")


def test_writing_to_a_tile_is_not_allowed(http):
    response = http.post("/collections/cameras/tiles/WebMercatorQuad/3/0/0", content=b"")
    assert response.status_code == 405
