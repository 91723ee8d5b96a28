"""The map viewer (gis.web) in Debian's headless Chromium: what a person's browser does with it.

Reuses the wall's browser (tests/clients/wall_browser.py: SwiftShader WebGL, no browser download)
and its recording of console errors, failed requests and responses; adds what a person does on
the viewer: wait for the map, move it, look at its pixels, click a feature, read the popup.
"""

from __future__ import annotations

import io

from PIL import Image

from tests.clients.wall_browser import Browser, WallPage

__all__ = ["Browser", "ViewerPage", "open_page"]


class ViewerPage(WallPage):
    def wait_ready(self, timeout_ms: int = 120_000) -> None:
        self.page.wait_for_function("window.onemapViewer && window.onemapViewer.ready", timeout=timeout_ms)
        self.wait_idle()

    def wait_idle(self, timeout_ms: int = 120_000) -> None:
        self.page.evaluate(
            """() => new Promise((done) => {
                const map = window.onemapViewer.map;
                if (map.loaded() && map.areTilesLoaded() && !map.isMoving()) { done(); return; }
                map.once('idle', () => done());
                map.triggerRepaint();
            })"""
        )

    def zoom(self) -> float:
        return self.page.evaluate("window.onemapViewer.map.getZoom()")

    def bounds(self) -> list[float]:
        return self.page.evaluate("window.onemapViewer.map.getBounds().toArray().flat()")

    def jump(self, lon: float, lat: float, zoom: float) -> None:
        self.page.evaluate(
            "([lon, lat, zoom]) => window.onemapViewer.map.jumpTo({center: [lon, lat], zoom})", [lon, lat, zoom]
        )
        self.wait_idle()

    def style_layers(self) -> list[dict]:
        return self.page.evaluate("window.onemapViewer.map.getStyle().layers")

    def rendered(self, style_layer: str) -> int:
        return self.page.evaluate(
            "(id) => window.onemapViewer.map.queryRenderedFeatures({layers: [id]}).length", style_layer
        )

    def features_at_centre(self, style_layer: str) -> list[dict]:
        return self.page.evaluate(
            """(id) => { const map = window.onemapViewer.map, c = map.getCanvas();
                const x = c.clientWidth / 2, y = c.clientHeight / 2;
                return map.queryRenderedFeatures([[x - 3, y - 3], [x + 3, y + 3]], {layers: [id]})
                  .map((f) => ({id: f.id, properties: f.properties, layer: f.sourceLayer})); }""",
            style_layer,
        )

    def centre(self) -> tuple[float, float]:
        box = self.page.locator("#map canvas").bounding_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def middle_pixels(self, fraction: float = 0.2) -> list[tuple[int, int, int]]:
        """The RGB pixels of the map's middle (`fraction` of its width and height), from a screenshot."""
        image = Image.open(io.BytesIO(self.page.locator("#map canvas").screenshot())).convert("RGB")
        w, h = image.size
        box = (int(w * (0.5 - fraction / 2)), int(h * (0.5 - fraction / 2)), int(w * (0.5 + fraction / 2)), int(h * (0.5 + fraction / 2)))
        return list(image.crop(box).get_flattened_data())

    def click_centre(self) -> dict:
        """Click the middle of the map; the popup that opens, as the person sees it."""
        before = self.page.evaluate("window.onemapViewer.popups")
        x, y = self.centre()
        self.page.mouse.click(x, y)
        self.page.wait_for_function("(n) => window.onemapViewer.popups > n", arg=before, timeout=60_000)
        popup = self.page.locator(".maplibregl-popup .feature-popup").last
        cells = popup.locator("td[data-name]")
        link = popup.locator("a.features-page")
        return {
            "collection": popup.get_attribute("data-collection"),
            "feature": popup.get_attribute("data-feature"),
            "heading": popup.locator("h3").text_content(),
            "attributes": {cells.nth(i).get_attribute("data-name"): cells.nth(i).text_content() for i in range(cells.count())},
            "link": link.get_attribute("href") if link.count() else None,
        }


def open_page(browser: Browser, url: str, width: int = 1280, height: int = 800) -> ViewerPage:
    """A page of OneMap, recorded from its first request."""
    page = browser._browser.new_page(viewport={"width": width, "height": height})
    viewer = ViewerPage(page)
    page.goto(url)
    return viewer
