"""Debian's Chromium, headless, driven by Playwright: what a video wall's browser does with /wall.

No GPU here: WebGL runs on SwiftShader, as Chrome itself falls back on a PC without a usable GPU
(`--use-angle=swiftshader-webgl`: SwiftShader for WebGL only, the page composited in software).
`--use-angle=swiftshader --ignore-gpu-blocklist` would also composite every frame through
SwiftShader, several times slower at 3840x2160 than any wall PC runs (bench/README.md, "Wall
display"). No browser is ever downloaded (`executable_path`).
Every console message, failed request and HTTP response is recorded for the tests to judge.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--use-angle=swiftshader-webgl", "--enable-unsafe-swiftshader", "--disable-dev-shm-usage"]


class Browser:
    def __enter__(self) -> "Browser":
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        return self

    def __exit__(self, *exc) -> None:
        self._browser.close()
        self._playwright.stop()

    def open(self, url: str, width: int, height: int) -> "WallPage":
        page = self._browser.new_page(viewport={"width": width, "height": height})
        wall = WallPage(page)
        page.goto(url)
        return wall


class WallPage:
    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.responses: list[dict] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.console_errors.append(f"page error: {err}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} at {message.location.get('url')}")

    def _response(self, response) -> None:
        self.responses.append({"url": response.url, "status": response.status})
        if response.status >= 400:
            self.failed.append(f"{response.url}: HTTP {response.status}")

    def close(self) -> None:
        self.page.close()

    def wait_idle(self, timeout_ms: int = 120_000) -> None:
        """The map has drawn with every tile it needs loaded (MapLibre's `idle`)."""
        self.page.wait_for_function("window.onemapWall && window.onemapWall.ready", timeout=timeout_ms)
        self.page.evaluate(
            """() => new Promise((done) => {
                const map = window.onemapWall.map;
                if (map.loaded() && map.areTilesLoaded() && !map.isMoving()) { done(); return; }
                map.once('idle', () => done());
                map.triggerRepaint();
            })"""
        )

    def visible_layers(self) -> list[dict]:
        """Style layers drawn at the current zoom (visibility and zoom range), labels excluded."""
        return self.page.evaluate(
            """() => {
                const map = window.onemapWall.map, z = map.getZoom();
                return map.getStyle().layers.filter((l) => l.type !== 'background' && l.type !== 'symbol'
                    && (l.layout || {}).visibility !== 'none'
                    && (l.minzoom === undefined || z >= l.minzoom) && (l.maxzoom === undefined || z < l.maxzoom))
                  .map((l) => ({id: l.id, layer: l['source-layer'], source: l.source}));
            }"""
        )

    def inner_bounds(self, margin: float) -> tuple[float, float, float, float]:
        """The lon/lat box of the screen's middle, `margin` of the width and height in from each edge."""
        return tuple(self.page.evaluate(
            """(m) => { const map = window.onemapWall.map, c = map.getCanvas();
                const w = c.clientWidth, h = c.clientHeight;
                const corners = [[w * m, h * m], [w * (1 - m), h * m], [w * m, h * (1 - m)], [w * (1 - m), h * (1 - m)]]
                  .map((p) => map.unproject(p));
                const lons = corners.map((p) => p.lng), lats = corners.map((p) => p.lat);
                return [Math.min(...lons), Math.min(...lats), Math.max(...lons), Math.max(...lats)]; }""",
            margin,
        ))

    def rendered(self, style_layer: str) -> int:
        return self.page.evaluate(
            "(id) => window.onemapWall.map.queryRenderedFeatures({layers: [id]}).length", style_layer
        )

    def query_features(self, style_layer: str, limit: int = 50) -> list[dict]:
        return self.page.evaluate(
            """([id, limit]) => window.onemapWall.map.queryRenderedFeatures({layers: [id]})
                .slice(0, limit).map((f) => ({id: f.id, properties: f.properties, layer: f.sourceLayer}))""",
            [style_layer, limit],
        )

    def source_tiles(self) -> dict[str, list[str]]:
        return self.page.evaluate(
            """() => { const out = {}; const style = window.onemapWall.map.getStyle();
                for (const [id, s] of Object.entries(style.sources)) if (s.tiles) out[id] = s.tiles;
                return out; }"""
        )

    def kpis(self) -> list[dict]:
        return self.page.evaluate(
            """() => [...document.querySelectorAll('#kpi-list li')].map((li) => ({
                id: li.dataset.indicator, value: li.dataset.value,
                name: li.querySelector('.kpi-name').textContent, text: li.querySelector('.kpi-value').textContent}))"""
        )

    def text(self, selector: str) -> str:
        return self.page.text_content(selector)

    def screenshot(self, path: Path) -> bytes:
        return self.page.screenshot(path=str(path))

    def frame_rate(self, seconds: float) -> float:
        """Frames drawn per second while the camera turns (the map's own render events)."""
        return self.page.evaluate(
            """(ms) => new Promise((done) => {
                const map = window.onemapWall.map;
                let frames = 0;
                const count = () => { frames += 1; };
                map.on('render', count);
                const start = performance.now();
                map.easeTo({bearing: map.getBearing() + 90, duration: ms, easing: (t) => t});
                setTimeout(() => { map.off('render', count); done(frames * 1000 / (performance.now() - start)); }, ms);
            })""",
            int(seconds * 1000),
        )
