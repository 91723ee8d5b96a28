"""`/wall` (the command-centre wall), `/wall/embed` (its iframe snippet) and the wall's assets.

The page is one HTML document carrying its view (gis.wall.view) as JSON; wall.js builds the map
from the server's own style, TileJSON and /stats, so the wall shows exactly what the API serves.
MapLibre GL JS comes from node_modules (the npm package `make run` installs), glyphs from
gis.wall.glyphs: nothing is fetched from outside the service.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis.app.problems import Problem
from gis.catalog import Catalog
from gis.security.principal import current
from gis.settings import REPO_ROOT, Settings
from gis.stats.indicators import Indicators
from gis.wall import view as views
from gis.wall.glyphs import FontMissing, Glyphs

HERE = Path(__file__).resolve().parent
MAPLIBRE_DIST = REPO_ROOT / "node_modules" / "maplibre-gl" / "dist"
MAPLIBRE_FILES = ("maplibre-gl.js", "maplibre-gl.css", "maplibre-gl.js.map")
HEATMAP_PREFIX = "h3_"
_RANGE = re.compile(r"^(\d+)-(\d+)\.pbf$")
_TEXT = {
    "zh": {
        "title": "城市运行一张图",
        "embed_heading": "嵌入大屏视图",
        "embed_help": "把下面的代码粘贴到网页中，即可嵌入当前视图（图层、热力图、中心、缩放、方位、倾角、主题、刷新间隔、展台模式）。",
        "open": "打开大屏",
    },
    "en": {
        "title": "OneMap city wall",
        "embed_heading": "Embed this wall view",
        "embed_help": "Paste the code below into a web page to embed the current view (layers, heatmap, centre, zoom, bearing, pitch, theme, refresh interval, kiosk mode).",
        "open": "Open the wall",
    },
}


class WallService:
    def __init__(self, settings: Settings, catalog: Catalog, tiles=None, maplibre_dist: Path = MAPLIBRE_DIST):
        self.settings = settings
        self.catalog = catalog
        self.tiles = tiles
        self.maplibre_dist = maplibre_dist
        self._glyphs: Glyphs | None = None
        self.indicators = Indicators.load(settings.server.indicator_registry, catalog)
        # read once: routes never touch the disk for a page
        self._templates = {name: (HERE / "templates" / name).read_text(encoding="utf-8") for name in ("wall.html", "embed.html")}

    @property
    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [
            Route("/wall", self.wall, methods=get),
            Route("/wall/embed", self.embed, methods=get),
            Route("/wall/maplibre/{name}", self.maplibre, methods=get),
            Mount("/wall/static", StaticFiles(directory=HERE / "static"), name="wall-static"),
            Route("/fonts/{fontstack}/{range}", self.glyphs, methods=get),
        ]

    # -- what a viewer may show -----------------------------------------------------------------

    def layers(self, request: Request) -> list[str]:
        """The layers whose features the caller's role may read (the wall token's role on a wall)."""
        principal = current()
        return [layer.id for layer in self.catalog.published if principal.may_read_features(layer.id)]

    def heatmaps(self, request: Request) -> list[str]:
        if self.tiles is None:
            return []
        principal = current()
        offered = []
        for tileset in sorted(t for t in self.tiles.engine.tilesets if t.startswith(HEATMAP_PREFIX)):
            indicator = self.indicators.get(tileset.removeprefix(HEATMAP_PREFIX))
            if indicator is not None and principal.may_use_indicator(indicator.id, indicator.layer):
                offered.append(tileset)
        return offered

    def view(self, request: Request) -> views.WallView:
        return views.parse(dict(request.query_params), self.layers(request), self.heatmaps(request))

    # -- pages ----------------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return urlsplit(self.settings.server.public_url).path.rstrip("/")

    async def wall(self, request: Request) -> Response:
        view = self.view(request)
        config = {
            "view": view.as_json(),
            "root": self.root,
            "layers": self.layers(request),
            "heatmaps": self.heatmaps(request),
            "font": "WenQuanYi Micro Hei",
        }
        # the JSON sits inside a <script>: "</" must not close it early
        data = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
        page = _fill(self._templates["wall.html"], {
            "LANG": view.lang,
            "THEME": view.theme,
            "TITLE": html.escape(_TEXT[view.lang]["title"]),
            "ROOT": html.escape(self.root),
            "BODY_CLASS": "kiosk" if view.kiosk else "",
            "CONFIG": data,
        })
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def embed(self, request: Request) -> Response:
        view = self.view(request)
        text = _TEXT[view.lang]
        wall_url = f"{self.settings.server.public_url}/wall?{view.query()}"
        snippet = (
            f'<iframe src="{html.escape(wall_url)}" width="1920" height="1080" '
            f'style="border:0" allow="fullscreen" title="{html.escape(text["title"])}"></iframe>'
        )
        page = _fill(self._templates["embed.html"], {
            "LANG": view.lang,
            "THEME": view.theme,
            "TITLE": html.escape(text["embed_heading"]),
            "ROOT": html.escape(self.root),
            "HEADING": html.escape(text["embed_heading"]),
            "HELP": html.escape(text["embed_help"]),
            "SNIPPET": html.escape(snippet),
            "SNIPPET_RAW": snippet.replace('width="1920" height="1080"', 'width="960" height="540"'),
            "WALL_URL": html.escape(wall_url),
            "OPEN": html.escape(text["open"]),
        })
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    # -- assets ---------------------------------------------------------------------------------

    async def maplibre(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in MAPLIBRE_FILES:
            raise Problem(404, f"no MapLibre file {name[:60]!r}; the wall serves {', '.join(MAPLIBRE_FILES)}")
        path = self.maplibre_dist / name
        if not path.is_file():
            raise Problem(
                503,
                f"MapLibre GL JS is not installed ({path} is missing): run `npm ci` in the OneMap checkout "
                "(`make run` does it)",
            )
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    async def glyphs(self, request: Request) -> Response:
        match = _RANGE.match(request.path_params["range"])
        if match is None:
            raise Problem(404, "glyph ranges are named START-END.pbf, e.g. /fonts/WenQuanYi%20Micro%20Hei/0-255.pbf")
        start, end = int(match.group(1)), int(match.group(2))
        if start % 256 or end != start + 255 or start > 0xFF00:
            raise Problem(404, f"no glyph range {start}-{end}: ranges are 256 code points from a multiple of 256 to 65535")
        if self._glyphs is None:
            try:
                self._glyphs = await run_in_threadpool(Glyphs)
            except FontMissing as err:
                raise Problem(503, str(err)) from None
        data = await run_in_threadpool(self._glyphs.range, start)
        # every fontstack is drawn with the one font this service ships
        return Response(data, media_type="application/x-protobuf", headers={"Cache-Control": "public, max-age=86400"})


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], text)
