"""`create_app(settings)`: the whole OneMap service, assembled from its parts.

No import-time globals: everything the app needs is built here from the settings it is given,
so tests and workers can build as many apps (on as many stores) as they like.
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import pygeoapi
from pygeoapi.api import API
from pygeoapi.openapi import get_oas
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from gis.aggregates import collections as aggregate_collections
from gis.app import compression, health, problems, vendor
from gis.app.cors import Cors
from gis.app.metrics import Metrics
from gis.catalog import Catalog
from gis.cases.routes import Clock, case_service, utc_now
from gis.edit.routes import EditService
from gis.features import registry
from gis.ogc.checks import Context
from gis.ogc.config import build_config
from gis.ogc.links import Links
from gis.ogc.routes import OgcFeatures
from gis.openapi import ApiDocument
from gis.security.collections import RoleApis
from gis.security.service import Security
from gis.processes.api import ProcessService
from gis.settings import Settings
from gis.stats.api import StatsService
from gis.stats.indicators import Indicators
from gis.storage.store import Store
from gis.wall.routes import WallService
from gis.web.routes import WebService

LOG = logging.getLogger("onemap")
PYGEOAPI_STATIC = Path(pygeoapi.__file__).parent / "static"


def create_app(settings: Settings | None = None, store: Store | None = None, clock: Clock = utc_now) -> Starlette:
    """The whole app. `clock` is the case loop's time (deadlines, the moments of its steps)."""
    settings = settings or Settings.from_env()
    owns_store = store is None
    catalog = store.catalog if store else Catalog.load(settings.server.layers_dir)
    store = store or Store.open(settings, catalog)
    store.initialise()
    store_key = registry.register(store)
    security = Security(settings, store)  # roles, tokens, audit tables: before anything is served

    indicators = Indicators.load(settings.server.indicator_registry, catalog)
    # the indicators' hexagon and grid aggregates are collections too (for QGIS)
    aggregates = aggregate_collections.for_app(settings, store, indicators, store_key)
    config = build_config(settings, catalog, store.all_meta(), store_key, aggregates)
    api = API(config, get_oas(config, fail_on_invalid_collection=False))
    published = frozenset(layer.id for layer in catalog.published)

    extra_routes: list[BaseRoute] = []
    extra_conformance: list[str] = []
    tile_service = _tile_service(store, settings)
    metrics = Metrics(store, tile_service)
    if tile_service is not None:
        extra_routes += tile_service.routes
        extra_conformance += list(getattr(tile_service, "conformance", []))

    stats = StatsService(store, indicators, settings.server.suppression_k)
    processes = ProcessService(store, indicators, settings.server.suppression_k, settings.server.public_url)
    extra_routes += processes.routes
    extra_conformance += processes.conformance
    wall = WallService(settings, catalog, tile_service)
    # the front page and map viewers, for people (gis.web)
    web = WebService(settings, catalog, store_key, indicators, tile_service, config.get("metadata"))
    # Part 4 edits; after each, the tiles under the old and new places are dropped before it returns
    edits = EditService(store, Context(catalog, published, frozenset(aggregates)), tile_service)
    # the case loop (gis.cases): transitions are edits of the case's row, through the edits' writer
    cases = case_service(settings, store, Context(catalog, published, frozenset(aggregates)), edits, clock)

    # each role's /openapi: pygeoapi's Features document completed with every other route (gis.openapi)
    api_document = ApiDocument(catalog, indicators, aggregates, tile_service, edits.openapi,
                               cases.openapi if cases is not None else None)
    # one pygeoapi API per role, so a layer a role may not read is absent from all it is served
    features = OgcFeatures(
        api, Context(catalog, published, frozenset(aggregates)), extra_conformance, api_for=RoleApis(config, indicators, api_document),
        conformance_for=edits.conformance,
        item_etag=edits.item_etag,
        pages=web,
        links=Links(
            settings.server.public_url,
            tile_service.offers if tile_service is not None else None,
            pages=(("/wall", "The command-centre wall"),),
            viewer=web.viewer_path,
            services=cases.links if cases is not None else (),
        ),
    )
    routes = [
        *health.ROUTES,
        *metrics.routes,
        *stats.routes,
        *wall.routes,
        *web.routes,
        *edits.routes,
        *(cases.routes if cases is not None else []),
        *extra_routes,
        *features.routes(),
        *vendor.routes(),
        Mount("/static", StaticFiles(directory=PYGEOAPI_STATIC), name="static"),
    ]

    api_document.routes = routes  # families the app does not serve stay out of /openapi

    @asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            async with edits.running():  # PostGIS: LISTEN for other systems' changes; GeoPackage: poll
                yield
        finally:
            if tile_service is not None:
                tile_service.close()  # its render threads, the tiles queued for the disk, its connections
            registry.unregister(store_key)
            if owns_store:
                store.close()

    app = Starlette(routes=routes, exception_handlers=problems.HANDLERS, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.tiles = tile_service
    app.state.edits = edits
    app.state.security = security
    # text answers gzipped inside the tiles' fast path: tiles are stored gzipped and sent as they are
    inner = compression.wrap(app)
    if tile_service is not None:
        # cached tiles are answered before routing: the warm path costs no framework work
        # (behind authentication: which tiles a request may have depends on who asks)
        inner = tile_service.wrap(inner)
    # CORS outermost: every answer (the fast path's, authentication's 401/414/431) carries it
    cors = Cors(settings.server.cors_origins, app)
    return _Wrapped(cors.wrap(metrics.wrap(security.wrap(inner), app)), app)


class _Wrapped:
    """The tiles' fast path in front of the app, keeping the app's `state` reachable."""

    def __init__(self, asgi, app: Starlette):
        self._asgi = asgi
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        await self._asgi(scope, receive, send)


def _tile_service(store: Store, settings: Settings):
    # The tile engine is optional at this layer; an error inside it must still surface.
    if importlib.util.find_spec("tiles.api") is None:
        return None
    from tiles.api import TileService

    return TileService(store, settings, cache_dir=settings.server.tile_cache_dir)
