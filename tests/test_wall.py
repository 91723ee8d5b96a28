"""The wall display: `/wall` in Debian's headless Chromium, driven by Playwright, on both backends.

The page must reach idle with tiles from every visible layer, show features `queryRenderedFeatures`
finds (and that /items confirms), KPIs equal to /stats, no console error, no failed request, and
a screenshot that is not blank. Refresh swaps tile versions and KPI text in place, never reloading.
Expected answers come from the HTTP API, never from the page's own code.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import h3
import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from gis.security import keys
from tests.clients.wall_browser import Browser, WallPage
from tests.security_support import security_server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(os.environ.get("ONEMAP_WALL_SHOTS", "")) if os.environ.get("ONEMAP_WALL_SHOTS") else None

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: scripts/ensure-system test installs it"),
]


def stats_total(base: str, indicator: str, token: str | None = None) -> float | None:
    params = {"indicator": indicator, **({"token": token} if token else {})}
    return httpx.get(f"{base}/stats", params=params, timeout=60).json()["total"]


def densest_centre(base: str) -> tuple[float, float]:
    """The middle of the H3 cell (resolution 8, ~0.7 km²) with the most floor area: the city core."""
    groups = httpx.get(f"{base}/stats", params={"indicator": "floor_area", "by": "h3", "res": 8}, timeout=60).json()["groups"]
    cell = max(groups, key=lambda g: (g["value"], g["key"]))["key"]
    lat, lon = h3.cell_to_latlng(cell)
    return lon, lat


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def wall_token(store, live_server):
    """A key of the wall role: read-only, allowed in the URL, sees cameras the public does not."""
    token, record = keys.create(store, "wall-test", "wall")
    yield token
    keys.revoke(store, record.key_id)


@pytest.fixture(scope="module")
def wall(browser, live_server, backend, wall_token) -> WallPage:
    lon, lat = densest_centre(live_server)
    heatmaps = [h for h in ("h3_cameras",) if _offers_heatmap(live_server, h)]
    query = f"center={lon:.6f},{lat:.6f}&zoom=14.5&pitch=45&bearing=20&refresh=5&token={wall_token}"
    if heatmaps:
        query += f"&heatmap={heatmaps[0]}"
    page = browser.open(f"{live_server}/wall?{query}", 1920, 1080)
    page.wait_idle()
    yield page
    page.close()


def _offers_heatmap(base: str, heatmap: str) -> bool:
    return httpx.get(f"{base}/collections/{heatmap}/tiles/WebMercatorQuad/tilejson.json", timeout=60).status_code == 200


def test_wall_reaches_idle_with_tiles_from_every_visible_layer(wall, live_server):
    visible = wall.visible_layers()
    assert {"buildings", "districts", "streets", "grids", "cameras", "key_places"} <= {v["layer"] for v in visible}
    # every layer the server has features for in the middle of the screen is drawn
    west, south, east, north = wall.inner_bounds(0.15)
    drawn = set()
    for layer in visible:
        if layer["layer"].startswith("h3_"):
            expected = True  # hexagons cover every cell that has cameras: the middle of the city has some
        else:
            page = httpx.get(
                f"{live_server}/collections/{layer['layer']}/items",
                params={"bbox": f"{west},{south},{east},{north}", "limit": 1, "f": "json"},
                timeout=60,
            ).json()
            expected = page["numberMatched"] > 0
        if expected:
            assert wall.rendered(layer["id"]), f"style layer {layer['id']} drew nothing"
            drawn.add(layer["layer"])
    assert {"buildings", "districts", "streets", "grids"} <= drawn
    for source, tiles in wall.source_tiles().items():
        loaded = [r for r in wall.responses if r["url"].split("?")[0].startswith(tiles[0].split("{z}")[0])]
        assert loaded and all(r["status"] in (200, 204, 304) for r in loaded), source
        assert any(r["status"] == 200 for r in loaded), f"no tile of source {source} had data"


def test_rendered_features_are_the_servers_features(wall, live_server):
    features = wall.query_features("buildings", limit=20)
    assert features
    for feature in features[:5]:
        item = httpx.get(f"{live_server}/collections/buildings/items/{feature['id']}", params={"f": "json"}, timeout=60)
        assert item.status_code == 200, feature
        props = item.json()["properties"]
        assert props["address"] == feature["properties"]["address"]
        assert props["height_m"] == pytest.approx(feature["properties"]["height_m"])


def test_kpis_equal_stats(wall, live_server, wall_token):
    listing = httpx.get(f"{live_server}/stats/indicators", params={"token": wall_token}, timeout=60).json()["indicators"]
    shown = wall.kpis()
    assert [k["id"] for k in shown] == [i["id"] for i in listing]
    for kpi in shown:
        expected = stats_total(live_server, kpi["id"], wall_token)
        if expected is None:
            assert kpi["value"] == "" and kpi["text"] == "—", kpi
        else:
            assert float(kpi["value"]) == expected, kpi
            assert int(kpi["text"].replace(",", "")) == round(expected), kpi


def test_no_console_error_no_failed_request_and_not_blank(wall, tmp_path, backend):
    assert not wall.console_errors, wall.console_errors
    assert not wall.failed, wall.failed
    png = wall.screenshot(tmp_path / "wall.png")
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"wall-{backend}.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB").resize((480, 270))
    background = (5, 13, 26)
    pixels = list(image.getdata())
    drawn = sum(1 for p in pixels if max(abs(a - b) for a, b in zip(p, background)) > 30)
    assert drawn / len(pixels) > 0.05, f"only {drawn / len(pixels):.1%} of the screen differs from the background"
    assert len(set(pixels)) > 500, "the screenshot has too few colours to be a map"


def test_every_request_carries_the_wall_token(wall, live_server):
    own = [r["url"] for r in wall.responses if r["url"].startswith(live_server)]
    assert own and all("token=" in url for url in own), [u for u in own if "token=" not in u][:5]


def test_without_a_token_the_wall_shows_what_the_public_may_see(store):
    def config(base: str, query: str) -> dict:
        page = httpx.get(f"{base}/wall?{query}", timeout=60).text
        return json.loads(page.split('<script id="wall-config" type="application/json">')[1].split("</script>")[0])

    with security_server(store) as base:  # the shipped roles: cameras are the wall's, not the public's
        token, record = keys.create(store, "wall-test-2", "wall")
        try:
            assert "cameras" in config(base, f"token={token}")["layers"]
            public = config(base, "")
            assert "cameras" not in public["layers"] and "cameras" not in public["view"]["layers"]
            assert "h3_cameras" not in public["heatmaps"]  # the roles file withholds the indicator
            refused = httpx.get(f"{base}/wall?layers=cameras", timeout=60)
            assert refused.status_code == 400 and "cameras" in refused.json()["detail"]
        finally:
            keys.revoke(store, record.key_id)


def test_chinese_by_default_with_an_english_switch(wall):
    assert wall.text("#title") == "城市运行一张图"
    assert wall.page.evaluate("document.documentElement.lang") == "zh"
    wall.page.click("#lang-switch")
    assert wall.text("#title") == "OneMap city wall"
    assert parse_qs(urlsplit(wall.page.url).query)["lang"] == ["en"]
    names = [k["name"] for k in wall.kpis()]
    assert "Buildings" in names
    wall.page.click("#lang-switch")
    assert wall.text("#title") == "城市运行一张图"


def test_refresh_swaps_tile_versions_and_kpis_in_place(wall, live_server, store, wall_token):
    """A camera goes offline: within one refresh interval the wall shows it, without reloading."""
    table = store.tables["cameras"]
    online = httpx.get(
        f"{live_server}/collections/cameras/items",
        params={"filter": "status = 'online'", "limit": 1, "f": "json", "token": wall_token},
        timeout=60,
    ).json()["features"][0]["id"]
    before_offline = stats_total(live_server, "cameras_offline", wall_token)
    old_tiles = wall.source_tiles()["onemap"]
    wall.page.evaluate("() => { window.__sameDocument = true; document.querySelector('li[data-indicator=cameras_offline]').__same = true; }")
    refreshes = wall.page.evaluate("window.onemapWall.refreshes")

    def set_status(status: str) -> None:
        with store.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == online).values(status=status))
            store._refresh_meta(conn, "cameras", bump=True)

    set_status("offline")
    try:
        assert stats_total(live_server, "cameras_offline", wall_token) == before_offline + 1
        deadline = time.monotonic() + 10  # the tile service re-reads data versions once a second
        while True:
            new_tiles = httpx.get(
                f"{live_server}/tiles/WebMercatorQuad/tilejson.json", params={"token": wall_token}, timeout=60
            ).json()["tiles"]
            if new_tiles != old_tiles or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert new_tiles != old_tiles
        wall.page.wait_for_function(f"window.onemapWall.refreshes > {refreshes}", timeout=20_000)
        # other writers (triggers, listeners) may move the version on again: the wall follows the server
        current = lambda: httpx.get(  # noqa: E731
            f"{live_server}/tiles/WebMercatorQuad/tilejson.json", params={"token": wall_token}, timeout=60
        ).json()["tiles"]
        deadline = time.monotonic() + 20
        while wall.source_tiles()["onemap"] != current() and time.monotonic() < deadline:
            time.sleep(1)
        wall.wait_idle()
        assert wall.source_tiles()["onemap"] == current() != old_tiles
        kpi = next(k for k in wall.kpis() if k["id"] == "cameras_offline")
        assert float(kpi["value"]) == before_offline + 1
        assert wall.page.evaluate(
            "() => window.__sameDocument === true && document.querySelector('li[data-indicator=cameras_offline]').__same === true"
        ), "the page or the KPI panel was rebuilt"
    finally:
        set_status("online")


def test_wall_parameters_are_checked(live_server):
    for query, word in [
        ("zoom=99", "zoom"),
        ("pitch=90", "pitch"),
        ("center=1", "center"),
        ("layers=population", "population"),
        ("layers=nosuch", "nosuch"),
        ("heatmap=nosuch", "heatmap"),
        ("refresh=2", "refresh"),
        ("theme=pink", "theme"),
        ("kiosk=maybe", "kiosk"),
        ("colour=red", "colour"),
    ]:
        answer = httpx.get(f"{live_server}/wall?{query}", timeout=60)
        assert answer.status_code == 400, query
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert word in answer.json()["detail"], (query, answer.json())


def test_embed_gives_an_iframe_of_the_same_view(live_server):
    query = "layers=districts,buildings&center=119.9,36.8&zoom=14&bearing=30&pitch=60&theme=light&refresh=120&kiosk=1&lang=en"
    page = httpx.get(f"{live_server}/wall/embed?{query}", timeout=60)
    assert page.status_code == 200
    import html as html_lib
    import re

    snippet = html_lib.unescape(re.search(r'<textarea id="snippet"[^>]*>(.*?)</textarea>', page.text, re.S).group(1))
    src = re.search(r'<iframe src="([^"]+)"', snippet).group(1)
    src = html_lib.unescape(src)
    assert src.startswith(f"{live_server}/wall?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    assert params == {
        "layers": "districts,buildings", "center": "119.9,36.8", "zoom": "14", "bearing": "30", "pitch": "60",
        "theme": "light", "refresh": "120", "kiosk": "1", "lang": "en",
    }
    assert httpx.get(src, timeout=60).status_code == 200


def test_assets_and_glyphs_are_served_locally(live_server):
    for name in ("maplibre-gl.js", "maplibre-gl.css"):
        assert httpx.get(f"{live_server}/wall/maplibre/{name}", timeout=60).status_code == 200
    assert httpx.get(f"{live_server}/wall/maplibre/../../pyproject.toml", timeout=60).status_code == 404
    page = httpx.get(f"{live_server}/wall", timeout=60).text
    assert "https://" not in page and "http://" not in page.split("wall-config")[0]
    glyphs = httpx.get(f"{live_server}/fonts/WenQuanYi%20Micro%20Hei/19968-20223.pbf", timeout=60)  # 一 to ...
    assert glyphs.status_code == 200 and glyphs.headers["content-type"] == "application/x-protobuf"
    assert len(glyphs.content) > 50_000  # 256 ideographs with distance fields
    assert httpx.get(f"{live_server}/fonts/x/1-2.pbf", timeout=60).status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["geopackage"], indirect=True)
def test_smooth_on_a_3840x2160_wall(browser, live_server, backend, record_property):
    """Time to idle (cold and warm tile caches) and frame rate while the camera turns, at video-wall size."""
    lon, lat = densest_centre(live_server)
    url = f"{live_server}/wall?center={lon:.6f},{lat:.6f}&zoom=15&pitch=55&kiosk=1&refresh=0"
    figures = {}
    for run in ("cold", "warm"):
        started = time.monotonic()
        page = browser.open(url, 3840, 2160)
        try:
            page.wait_idle()
            figures[run] = time.monotonic() - started
            if run == "warm":
                figures["fps"] = page.frame_rate(seconds=4)
                # the map draws into at most a 1080p buffer, scaled up: per-pixel frame cost is what a
                # software-rendering wall PC cannot afford at 4K; the panels stay at the screen's resolution
                canvas = page.page.evaluate("(() => { const c = window.onemapWall.map.getCanvas(); return [c.width, c.height, c.clientWidth, c.clientHeight]; })()")
                assert canvas[0] * canvas[1] <= 1920 * 1080 + 4000 and canvas[2:] == [3840, 2160], canvas
            # tiles that turn out of view are cancelled by MapLibre: aborted, not failed
            assert not page.console_errors
            assert not [f for f in page.failed if "ERR_ABORTED" not in f]
        finally:
            page.close()
    for name, value in figures.items():
        record_property(f"wall_4k_{name}", round(value, 2))
    print(
        f"\n3840x2160: idle after {figures['cold']:.1f} s (cold tiles), {figures['warm']:.1f} s (warm); "
        f"{figures['fps']:.1f} frames/s while rotating"
    )
    assert figures["warm"] < 60
    assert figures["fps"] > 0  # software WebGL (SwiftShader) on shared CPUs: measured, not held to 60
