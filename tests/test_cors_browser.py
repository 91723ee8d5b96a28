"""A MapLibre page on ANOTHER origin, in Debian's Chromium: what a city department's own web page
does with OneMap. The page is served by a second server on another port (its own origin), with
MapLibre GL JS from node_modules; it loads OneMap's style (and through it TileJSON, tiles and
glyphs), draws the city, then fetch()es a Features page with a staff key and makes a Part 4 PATCH
with If-Match. Every one of those requests is cross-origin: the browser preflights those carrying
Authorization or If-Match, and refuses any answer without the CORS headers.

The OneMap side is a city of its own (tests/edit_city.py), so the edit disturbs no other module.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gis.settings import REPO_ROOT
from tests.clients.wall_browser import Browser, WallPage
from tests.conftest import LiveServer, free_port
from tests.edit_city import build
from tests.oracle import read_layer

CHROMIUM = Path("/usr/bin/chromium")
MAPLIBRE = REPO_ROOT / "node_modules" / "maplibre-gl" / "dist"
BACKGROUND = (0x0B, 0x1A, 0x2E)  # the OneMap style's background colour

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: scripts/ensure-system test installs it"),
    pytest.mark.skipif(not MAPLIBRE.is_dir(), reason="node_modules/maplibre-gl is missing: run npm ci"),
]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>A department's map</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/maplibre/maplibre-gl.css">
<script src="/maplibre/maplibre-gl.js"></script>
<style>html, body, #map { margin: 0; width: 100%; height: 100%; }</style>
</head><body><div id="map"></div>
<script>
const params = new URLSearchParams(location.search);
const onemap = params.get('onemap');
window.map = new maplibregl.Map({
  container: 'map', style: onemap + '/styles/onemap/style.json',
  center: [Number(params.get('lon')), Number(params.get('lat'))], zoom: Number(params.get('zoom')),
  attributionControl: false, canvasContextAttributes: {preserveDrawingBuffer: true},
});
window.idle = false;
map.on('idle', () => { window.idle = true; });
map.on('error', (e) => console.error('map error: ' + (e.error && e.error.message)));

// what the department's script does with a staff key: read a page of features, edit one
window.edit = async (key, layer, id) => {
  const auth = {Authorization: 'Bearer ' + key};
  const page = await fetch(`${onemap}/collections/${layer}/items?limit=20`, {headers: auth});
  const features = (await page.json()).features.length;
  const item = await fetch(`${onemap}/collections/${layer}/items/${id}`, {headers: auth});
  const etag = item.headers.get('ETag');
  const patched = await fetch(`${onemap}/collections/${layer}/items/${id}`, {
    method: 'PATCH',
    headers: {...auth, 'If-Match': etag, 'Content-Type': 'application/merge-patch+json'},
    body: JSON.stringify({properties: {status: 'damaged'}}),
  });
  const after = await fetch(`${onemap}/collections/${layer}/items/${id}`, {headers: auth});
  return {pageStatus: page.status, features, itemStatus: item.status, etag, itemEncoding: item.headers.get('Content-Encoding'),
          patchStatus: patched.status, newEtag: patched.headers.get('ETag'), status: (await after.json()).properties.status};
};
</script></body></html>"""


def other_origin_app() -> Starlette:
    async def page(request):
        return HTMLResponse(PAGE)

    return Starlette(routes=[Route("/", page), Mount("/maplibre", StaticFiles(directory=MAPLIBRE))])


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("cors_browser"), "cors_browser")
    yield built
    cleanup()


@pytest.fixture(scope="module")
def portal():
    port = free_port()
    with LiveServer(other_origin_app(), port) as server:
        yield server.url


def test_a_maplibre_page_on_another_origin_draws_the_city_and_edits_with_a_key(city, portal):
    assert city.url.rsplit(":", 1)[1] != portal.rsplit(":", 1)[1], "two origins"
    rows = read_layer(city.store, "buildings")
    middle = rows[len(rows) // 2].geom.representative_point()
    url = f"{portal}/?onemap={city.url}&lon={middle.x}&lat={middle.y}&zoom=15"
    with Browser() as browser:
        page: WallPage = browser.open(url, 800, 600)
        page.page.wait_for_function("window.idle === true", timeout=120_000)
        shot = Image.open(io.BytesIO(page.page.locator("#map canvas").screenshot())).convert("RGB")
        w, h = shot.size
        centre = shot.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        data = centre.tobytes()
        pixels = (data[i : i + 3] for i in range(0, len(data), 3))
        drawn = sum(1 for pixel in pixels if max(abs(a - b) for a, b in zip(pixel, BACKGROUND)) > 24)
        assert drawn > 0.02 * centre.width * centre.height, f"only {drawn} pixels of the centre are not background"
        onemap_requests = [r for r in page.responses if r["url"].startswith(city.url)]
        assert any("/styles/onemap/style.json" in r["url"] for r in onemap_requests)
        assert any("/tiles/" in r["url"] and r["status"] == 200 for r in onemap_requests), onemap_requests[:10]

        component = read_layer(city.store, "urban_components")[7]
        key = city.staff["Authorization"].removeprefix("Bearer ")
        result = page.page.evaluate("([key, id]) => window.edit(key, 'urban_components', id)", [key, component.id])
        assert result["pageStatus"] == 200 and result["features"] == 20, result
        assert result["itemStatus"] == 200 and result["etag"], "the ETag is exposed to the page's script"
        assert result["patchStatus"] == 204, result
        assert result["newEtag"] and result["newEtag"] != result["etag"]
        assert result["status"] == "damaged"
        assert not page.failed, page.failed
        assert not page.console_errors, page.console_errors
        page.close()
    stored = next(r for r in read_layer(city.store, "urban_components") if r.id == component.id)
    assert stored.props["status"] == "damaged", "the edit reached the store"
