"""The map viewer in Debian's headless Chromium, driven by Playwright, on both backends (gis.web).

A person starts at the front page and follows its links: the viewers load with no failed request
and no console error, fit the layer, show its hexagons zoomed out, draw the layer's own colours
(read from its style) in the middle of the screen over a feature the Features API names, and a
click opens a popup with the attributes /items gives the same caller. Expected answers come from
the HTTP API, never from the page's code.
"""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
import shapely

from gis.security import keys
from tests.clients.viewer_browser import Browser, ViewerPage, open_page
from tests.security_support import security_server

CHROMIUM = Path("/usr/bin/chromium")
COLOUR_PAINT = ("fill-extrusion-color", "fill-color", "line-color", "circle-color")
OPACITY_PAINT = ("fill-extrusion-opacity", "fill-opacity", "line-opacity", "circle-opacity")
# (collection, zoom to look at one feature): points and footprints large enough to click
LOOKS = [("key_places", 16), ("buildings", 17)]

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: scripts/ensure-system test installs it"),
]


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as c:
        yield c


def fitted(shown: list[float], bounds: list[float]) -> None:
    """The view holds the whole extent, and the extent fills most of the view in one direction."""
    assert shown[0] <= bounds[0] + 1e-6 and shown[1] <= bounds[1] + 1e-6, (shown, bounds)
    assert shown[2] >= bounds[2] - 1e-6 and shown[3] >= bounds[3] - 1e-6, (shown, bounds)
    fill = max((bounds[2] - bounds[0]) / (shown[2] - shown[0]), (bounds[3] - bounds[1]) / (shown[3] - shown[1]))
    assert fill > 0.5, f"the extent fills {fill:.0%} of the view: not fitted"


def healthy(page: ViewerPage) -> None:
    assert page.console_errors == [], page.console_errors
    assert page.failed == [], page.failed


# -- colours, from the layer's style --------------------------------------------------------------------


def hex_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    return tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))


def colours_named(value) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("#") else []
    if isinstance(value, list):
        return [c for part in value for c in colours_named(part)]
    return []


def drawn_colours(style: dict, layer_id: str) -> list[tuple[int, int, int]]:
    """The layer's colours as they reach the screen: at its opacity over the style's background."""
    background = hex_rgb(next(l for l in style["layers"] if l["type"] == "background")["paint"]["background-color"])
    layer = next(l for l in style["layers"] if l["id"] == layer_id)
    paint = layer["paint"]
    opacity = next((paint[k] for k in OPACITY_PAINT if isinstance(paint.get(k), (int, float))), 1.0)
    named = [c for key in COLOUR_PAINT for c in colours_named(paint.get(key))]
    assert named, f"{layer_id}: no colour in its style"
    return [tuple(round(opacity * c + (1 - opacity) * b) for c, b in zip(hex_rgb(colour), background)) for colour in named]


def pixels_of(pixels, colours, tolerance: float = 24.0) -> int:
    return sum(1 for p in pixels if any(math.dist(p, c) <= tolerance for c in colours))


def shown(value) -> str:
    """A property value as the popup writes it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- the tests --------------------------------------------------------------------------------------------


def test_front_page_loads_clean_and_leads_to_the_city_viewer(browser, live_server, http):
    page = open_page(browser, f"{live_server}/?lang=en")
    try:
        page.page.wait_for_load_state("networkidle")
        rows = page.page.locator("tr[data-layer]")
        assert rows.count() >= 5
        page.page.click("#city-viewer")
        page.wait_ready()
        healthy(page)
        assert page.page.url.split("?")[0].split("#")[0] == f"{live_server}/viewer"
        bounds = http.get("/tiles/WebMercatorQuad/tilejson.json").json()["bounds"]
        fitted(page.bounds(), bounds)
        hexagons = [l["id"] for l in page.style_layers() if (l.get("source-layer") or "").startswith("h3_")]
        assert sum(page.rendered(h) for h in hexagons) > 0, "the whole city shows no hexagons zoomed out"
        assert page.page.locator("#layer-list li").count() >= 5
    finally:
        page.close()


@pytest.mark.parametrize("collection,zoom", LOOKS)
def test_a_collection_viewer_draws_its_features_and_shows_their_attributes(browser, live_server, http, collection, zoom):
    style = http.get(f"/collections/{collection}/styles/default/style.json").json()
    own = next(l for l in style["layers"] if l.get("source-layer") == collection)
    hexagons = [l["id"] for l in style["layers"] if (l.get("source-layer") or "").startswith("h3_")]
    assert hexagons, f"{collection}'s style has no hexagons below its zoom"

    page = open_page(browser, f"{live_server}/?lang=en")
    try:
        page.page.click(f'a[rel=viewer][href*="/collections/{collection}/viewer"]')
        page.wait_ready()
        # fitted to the layer's extent, as its TileJSON gives it
        bounds = http.get(f"/collections/{collection}/tiles/WebMercatorQuad/tilejson.json").json()["bounds"]
        fitted(page.bounds(), bounds)

        # one feature the Features API names, looked at from below and above the layer's own zoom
        feature = http.get(f"/collections/{collection}/items", params={"f": "json", "limit": 1}).json()["features"][0]
        point = shapely.geometry.shape(feature["geometry"]).representative_point()
        page.jump(point.x, point.y, own["minzoom"] - 1)
        assert sum(page.rendered(h) for h in hexagons) > 0, "no hexagons below the layer's zoom"
        assert page.rendered(own["id"]) == 0
        page.jump(point.x, point.y, zoom)
        colours = drawn_colours(style, own["id"])
        middle = page.middle_pixels()
        assert pixels_of(middle, colours) >= 20, f"the middle of the map shows no {collection} colour {colours}"

        # the tile's properties are masked as the item is (the same caller)
        in_tile = {f["id"]: f["properties"] for f in page.features_at_centre(own["id"])}
        assert feature["id"] in in_tile
        assert in_tile[feature["id"]] == feature["properties"]

        popup = page.click_centre()
        healthy(page)
        assert popup["collection"] == collection
        fid = popup["feature"]
        item = http.get(f"/collections/{collection}/items/{fid}", params={"f": "json"}).json()
        assert popup["attributes"] == {k: shown(v) for k, v in item["properties"].items()}
        assert popup["link"] == f"{live_server}/collections/{collection}/items/{fid}"
        assert httpx.get(popup["link"], headers={"Accept": "text/html"}, timeout=60).status_code == 200
        if collection == "key_places":  # phones are masked for the public, in the popup as in /items
            assert "****" in popup["attributes"]["contact"]
    finally:
        page.close()


def test_a_url_token_travels_with_every_request_of_the_viewer(browser, store):
    """The wall role may carry its key in the URL: the front page passes it on to the viewer, and
    the viewer to every request it makes (MapLibre's transformRequest and its own fetches), so a
    layer hidden from the public draws for it."""
    with security_server(store) as base:
        assert httpx.get(f"{base}/collections/cameras/viewer").status_code == 404  # not for the public
        token, record = keys.create(store, "viewer-wall-test", "wall")
        try:
            page = open_page(browser, f"{base}/?lang=en&token={token}")
            try:
                # the front page counts for the token's role, and passes the token on in its links
                assert page.page.locator('tr[data-layer="cameras"]').count() == 1
                page.page.click('a[rel=viewer][href*="/collections/cameras/viewer"]')
                page.wait_ready()
                assert f"token={token}" in page.page.url
                healthy(page)
                fetched = [r["url"] for r in page.responses if r["url"].startswith(base)]
                data = [u for u in fetched if "/tiles/" in u or "style.json" in u or "tilejson" in u]
                assert data and all(f"token={token}" in u for u in data), data
                feature = httpx.get(
                    f"{base}/collections/cameras/items", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}, timeout=60
                ).json()["features"][0]
                page.jump(*feature["geometry"]["coordinates"][:2], 16)
                assert page.rendered("cameras") > 0
            finally:
                page.close()
        finally:
            keys.revoke(store, record.key_id)
