"""The front page (`/` for browsers), the map viewers and their assets.

`front_page` is handed the HTML requests of `/` by gis.ogc.routes (JSON stays pygeoapi's landing
page). The viewers draw the server's own styles with MapLibre GL JS from node_modules, served by
the wall (/wall/maplibre/...), and its glyphs (/fonts): nothing is fetched from outside.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import jinja2
import pygeoapi
from pygeoapi.provider.base import ProviderGenericError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis.app import problems
from gis.app.problems import Problem
from gis.catalog import Catalog
from gis.security.principal import current
from gis.settings import Settings
from gis.stats.indicators import Indicators
from gis.web import negotiation
from gis.web.holdings import Holdings
from gis.web.text import TEXT, VIEWER_KEYS

HERE = Path(__file__).resolve().parent
CITY_STYLE = "/styles/onemap/style.json"
CITY_TILEJSON = "/tiles/WebMercatorQuad/tilejson.json"
CITY_TILESET = "/tiles/WebMercatorQuad"
FONT = "WenQuanYi Micro Hei"  # the one font /fonts serves (gis.wall.glyphs)
NO_STORE = {"Cache-Control": "no-store"}  # what a page shows depends on who asks and on the data


class WebService:
    def __init__(
        self, settings: Settings, catalog: Catalog, store_key: str, indicators: Indicators, tiles=None, metadata: dict | None = None
    ):
        self.base = settings.server.public_url.rstrip("/")
        self.root = urlsplit(self.base).path.rstrip("/")
        self.holdings = Holdings(catalog, store_key, indicators, tiles)
        self.identification = (metadata or {}).get("identification", {})
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False
        )

    @property
    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [
            Route("/viewer", self.city_viewer, methods=get),
            Route("/collections/{collection_id}/viewer", self.collection_viewer, methods=get),
            Mount("/web/static", StaticFiles(directory=HERE / "static"), name="web-static"),
        ]

    # -- the front page -------------------------------------------------------------------------

    def wants_front_page(self, request: Request) -> bool:
        return negotiation.asks_for_html(request)

    async def front_page(self, request: Request) -> Response:
        lang = negotiation.language(request)
        try:
            # counts read the store: off the event loop, with the caller's principal (context copied)
            holdings = await run_in_threadpool(self.holdings.layers)
        except ProviderGenericError as err:  # the store restarting or too slow (gis.features.provider)
            status = int(getattr(err, "http_status_code", 503))
            raise Problem(status, err.message, headers={"Retry-After": problems.RETRY_AFTER} if status == 503 else None) from None
        principal = current()
        page = self._env.get_template("front.html").render(
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            t=SimpleNamespace(**TEXT[lang]),
            title=self._localised("title", lang) or "OneMap",
            description=self._localised("description", lang),
            root=self.root,
            role=principal.role,
            holdings=holdings,
            city_viewer=self.holdings.city_viewer(),
            indicators=self.holdings.usable_indicators(),
            urls=self.client_urls(),
            qgis_command=self.qgis_command(principal.role, principal.token_kind != "anonymous"),
            pygeoapi_version=pygeoapi.__version__,
        )
        return HTMLResponse(page, headers={**NO_STORE, "Content-Language": lang, "Vary": "Accept, Accept-Language"})

    def client_urls(self) -> dict[str, str]:
        # the XYZ form of /tiles/WebMercatorQuad's rel=item template ({tileMatrix}/{tileRow}/{tileCol}),
        # without its ?v= data version, which only keeps caches apart: QGIS and MapLibre want {z}/{y}/{x}
        return {
            "style": self.base + CITY_STYLE,
            "tilejson": self.base + CITY_TILEJSON,
            "tileset": self.base + CITY_TILESET,
            "template": self.base + CITY_TILESET + "/{z}/{y}/{x}",
        }

    def qgis_command(self, role: str, with_token: bool) -> str:
        command = f"onemap qgis-project onemap-{role}.qgz --role {role} --url {self.base}"
        return command + " --token KEY" if with_token else command

    def _localised(self, key: str, lang: str) -> str:
        value = self.identification.get(key, "")
        if isinstance(value, dict):
            return str(value.get(lang) or value.get("en") or next(iter(value.values()), ""))
        return str(value)

    # -- viewers --------------------------------------------------------------------------------

    async def city_viewer(self, request: Request) -> Response:
        if not self.holdings.city_viewer():
            raise Problem(404, "this server has no tiles, so no map viewer")
        lang = negotiation.language(request)
        return self._viewer(lang, None, TEXT[lang]["city_viewer"], CITY_STYLE, CITY_TILEJSON)

    async def collection_viewer(self, request: Request) -> Response:
        collection_id = request.path_params["collection_id"]
        lang = negotiation.language(request)
        # unknown and forbidden answer alike: a role learns nothing of layers it may not read
        if not self.holdings.has_viewer(collection_id):
            raise Problem(404, f"no collection {collection_id[:60]!r} with a map viewer; see /collections")
        layer = self.holdings.layer(collection_id)
        title = layer.title_zh if lang == "zh" else layer.title
        path = f"/collections/{collection_id}"
        return self._viewer(lang, collection_id, title, f"{path}/styles/default/style.json", f"{path}/tiles/WebMercatorQuad/tilejson.json")

    def _viewer(self, lang: str, collection: str | None, title: str, style: str, tilejson: str) -> Response:
        text = TEXT[lang]
        layers = {
            layer.id: {"title": layer.title_zh if lang == "zh" else layer.title, "title_field": layer.title_field}
            for layer in self.holdings.readable()
        }
        config = {
            "lang": lang,
            "base": self.base,
            "root": self.root,
            "collection": collection,
            "style": style,
            "tilejson": tilejson,
            "layers": layers,  # the feature layers whose items the caller may read (popups fetch them)
            "font": FONT,
            "text": {key: text[key] for key in VIEWER_KEYS},
        }
        here = f"/collections/{collection}/viewer" if collection else "/viewer"
        page = self._env.get_template("viewer.html").render(
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            t=SimpleNamespace(**text),
            title=title,
            site_title=self._localised("title", lang) or "OneMap",
            root=self.root,
            here=here,
            collection=collection,
            # the JSON sits inside a <script>: "</" must not close it early
            config=json.dumps(config, ensure_ascii=False).replace("</", "<\\/"),
        )
        return HTMLResponse(page, headers={**NO_STORE, "Content-Language": lang})

    # -- the link from pygeoapi's collection pages ----------------------------------------------

    def viewer_path(self, collection_id: str | None) -> str | None:
        """Where the map viewer of a collection (None: the whole city) is, if the caller has one."""
        if collection_id is None:
            return "/viewer" if self.holdings.city_viewer() else None
        return f"/collections/{collection_id}/viewer" if self.holdings.has_viewer(collection_id) else None

    def viewer_link(self, content, headers: dict, collection_id: str):
        """pygeoapi's HTML collection and items pages, with a link to the collection's viewer.

        Inserted after the page's heading rather than through copies of pygeoapi's templates
        (server.templates.path): a copied template silently stops following pygeoapi's own as it
        changes, while this insertion needs only one <h1> and falls back to the top of <main>
        (tests/test_web_pages.py checks both pages carry the link).
        """
        if "html" not in headers.get("Content-Type", "") or not self.holdings.has_viewer(collection_id):
            return content
        text = content.decode() if isinstance(content, bytes) else str(content)
        lang = "zh" if re.search(r'<html[^>]*\blang="zh', text[:400]) else "en"
        link = (
            f'<p class="onemap-viewer"><a href="{self.base}/collections/{collection_id}/viewer?lang={lang}">'
            f"{TEXT[lang]['viewer_title']}</a></p>"
        )
        main = max(text.find("<main"), 0)
        for anchor in ("</h1>", "<main>"):
            at = text.find(anchor, main)
            if at >= 0:
                at += len(anchor)
                return text[:at] + link + text[at:]
        return text.replace("</body>", link + "</body>", 1)
