"""OGC API - Tiles over HTTP: `TileService(store, settings)` gives the routes and a fast path.

Tile requests are plain ASGI (no pygeoapi, no Request objects). A tile already in the memory LRU
is answered by `wrap(app)` before routing; everything else goes through `routes`. A miss runs one
render per tile however many clients ask at once (single-flight) and stops the database query when
every client waiting for it has gone away. PostGIS tiles made of features are awaited on the event
loop (tiles.render_async); hexagon tiles and GeoPackage tiles render in a worker thread.

Responses: 200 with `application/vnd.mapbox-vector-tile` (gzipped, `Content-Encoding: gzip`, when
Accept-Encoding allows it; `Vary: Accept-Encoding` always), 204 for an empty tile, 304 when
If-None-Match matches the strong ETag of the encoding sent (a hash of the plain bytes; `-gz` added
for the gzipped ones); `Cache-Control` is long and immutable when the request's `v` is the
tileset's current data version, revalidate-always otherwise. Errors are problem details: 400
(non-integer index, bad filter, bad parameter), 404 (unknown tileset or tile matrix set, index
outside the matrix), 503 (store unavailable or too slow).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from gis.app import problems
from gis.app.compression import accepts_gzip
from gis.security.principal import current as current_principal
from gis.security.tiles import audit_tile, view_filter_key
from gis.settings import REPO_ROOT, Settings
from gis.storage.store import LayerMeta, Store
from tiles import filters, metadata, styles
from tiles.heatmap import style as heatmap_style
from tiles.cache import Entry, Key, TileCache
from tiles.engine import DATASET, Cancelled, RenderJob, TileEngine, Tileset, UnknownTileset
from tiles.generalise import TILE_BUDGET_BYTES
from tiles.heatmap.definition import load_heatmaps
from tiles.matrix import GRIDS, TileOutOfRange
from tiles.plan import Rendered

LOG = logging.getLogger("onemap.tiles")
TILE_MEDIA = metadata.TILE_MEDIA.encode()
_TILE_PATH = re.compile(r"^/(?:collections/([^/]+)/)?tiles/([^/]+)/([^/]+)/([^/]+)/([^/]+)$")
_IMMUTABLE = b"public, max-age=31536000, immutable"
_REVALIDATE = b"public, max-age=0, must-revalidate"
_PARAMS = {"v", "f", "filter", "filter-lang", "filter-crs"}

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def _etag_matches(header: bytes, etag: str) -> bool:
    value = header.decode("latin-1").strip()
    if value == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in value.split(","))


class _Reply(Exception):
    """A finished answer (problem details) raised from deep inside the tile path."""

    def __init__(self, status: int, detail: str, headers: dict | None = None):
        self.status, self.detail, self.headers = status, detail, headers or {}


class TileService:
    """Everything tiles: routes for the app, a pre-routing fast path, and cache invalidation."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        cache_dir: Path | None = REPO_ROOT / "data" / "cache",
        memory_bytes: int = 256 * 2**20,
        budget: int = TILE_BUDGET_BYTES,
        sync_seconds: float = 1.0,
    ):
        self.store = store
        self.settings = settings
        heatmaps = load_heatmaps(settings, store.catalog)
        shared = cache_dir / "cells" if cache_dir else None  # workers of one host share city cells there
        self.engine = TileEngine(store, budget, heatmaps, settings.server.suppression_k, shared)
        self.cache = TileCache(cache_dir, memory_bytes, reach=self.engine.reach)
        self.sync_seconds = sync_seconds
        self.meta: dict[str, LayerMeta] = {}
        self.versions: dict[str, int] = {}  # per tileset: the data version in tile URLs
        self._inflight: dict[Key, tuple[asyncio.Future, RenderJob, list[int]]] = {}
        # renders off the loop (hexagons, the GeoPackage) get threads of their own, as many as the
        # tile engine's connections: a burst queues here, not in the pool (whose wait can time out)
        db = settings.database
        self._renderers = ThreadPoolExecutor(db.pool_size, thread_name_prefix="tile-render")
        self._poller: asyncio.Task | None = None
        self._last_sync = 0.0
        self.refresh()
        self.conformance = CONFORMANCE
        self.routes: list[BaseRoute] = self._routes()

    # -- versions, invalidation -----------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the layers' data versions and bounds; catch the cache up with other processes."""
        meta_table = self.store.meta
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(meta_table)).mappings().all()
        meta = {}
        for row in rows:
            bbox = None if row["minx"] is None else (row["minx"], row["miny"], row["maxx"], row["maxy"])
            meta[row["layer"]] = LayerMeta(row["layer"], row["version"], row["feature_count"], bbox, row["updated_at"])
        self.meta = meta
        # every layer, published or not: heatmaps aggregate unpublished ones (population)
        layer_versions = {layer.id: meta[layer.id].version for layer in self.store.catalog if layer.id in meta}
        # with each layer's last-write time: a rebuilt store behind the same cache directory restarts its versions
        stamps = {layer: meta[layer].updated_at for layer in layer_versions}
        self.cache.sync(layer_versions, self.engine.tilesets_with, stamps)
        self.engine.layer_versions = layer_versions
        self.engine.heat_tiles.follow(layer_versions)  # after a write: hexagon cells rebuilt ahead
        # URLs carry the version the cache matches: a write not yet reflected in it is not immutable
        covered = {layer: self.cache.covered(layer, v) for layer, v in layer_versions.items()}
        self.versions = {
            t.id: sum(covered.get(source, 0) for source in t.sources) for t in self.engine.tilesets.values()
        }
        self._last_sync = time.monotonic()

    def invalidate(self, layer_id: str, bbox: tuple[float, float, float, float] | None) -> None:
        """Drop every cached tile a write to `layer_id` inside `bbox` (lon/lat, EPSG:4490; None =
        the whole layer) may have changed, at every level of every grid, in every tileset carrying
        the layer. Synchronous: call it after the write commits and before the write returns."""
        if layer_id not in self.store.catalog:
            raise KeyError(f"unknown layer {layer_id!r}")
        meta = self.store.layer_meta(layer_id)
        self.cache.invalidate(layer_id, self.engine.tilesets_with(layer_id), bbox, meta.version, meta.updated_at)
        self.refresh()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                await run_in_threadpool(self.refresh)
            except Exception:  # a store hiccup must not kill the poller; the next round retries
                LOG.warning("tile cache sync failed", exc_info=True)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    # -- the fast path ----------------------------------------------------------------------------

    def wrap(self, app):
        """ASGI middleware: tile GETs go to the tile path before any routing (the routes and their
        matching cost a cold tile more than its plan); tiles in memory are answered at once."""
        tile_routes = {r.path.startswith("/collections/"): r for r in self.routes if isinstance(r.app, _TileApp)}

        async def tiles_first(scope, receive, send):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                match = _TILE_PATH.match(scope["path"])
                if match is not None:
                    if not await self._serve_hit(match, scope, send):
                        await self._serve_routed(match, tile_routes, scope, receive, send)
                    return
            await app(scope, receive, send)

        return tiles_first

    async def _serve_routed(self, match: re.Match, tile_routes: dict, scope, receive, send) -> None:
        """What the tile route would do, as the router would call it (metrics read its template)."""
        collection, tms, z, y, x = match.groups()
        scope["route"] = tile_routes[collection is not None]
        scope["path_params"] = {"tms": tms, "z": z, "y": y, "x": x}
        if collection is not None:
            scope["path_params"]["collection_id"] = collection
        try:
            await self.tile_asgi(scope, receive, send)
        except Exception as exc:  # as the app's own handlers would answer it: problem details
            reply = await problems.on_unexpected(Request(scope), exc)
            await reply(scope, receive, send)

    async def _serve_hit(self, match: re.Match, scope, send) -> bool:
        collection, tms, z, y, x = match.groups()
        if not (z.isascii() and z.isdigit() and y.isascii() and y.isdigit() and x.isascii() and x.isdigit()):
            return False
        if params_f_bad(scope):
            return False  # the full path names the bad format
        query = scope.get("query_string", b"")
        params = dict(parse_qsl(query.decode("latin-1"))) if query else {}
        if set(params) - {"v", "f"}:
            return False  # filters and odd parameters take the full path
        tileset = collection or DATASET
        entry = self.cache.get_memory((tileset, tms, int(z), int(x), int(y), view_filter_key(current_principal(), "")))
        if entry is None:
            return False
        version = self.versions.get(tileset)
        if "v" in params and params["v"] != str(version):
            return False  # a version this process has not seen yet: sync first, on the full path
        await self._send_tile(scope, send, entry, "v" in params, (collection, tms, int(z), int(x), int(y)))
        return True

    async def _send_tile(self, scope, send, entry: Entry, current_version: bool, address: tuple) -> None:
        audit_tile(self, *address, entry)  # reads of sensitive layers are on the record (gis.security)
        inm = accept = None
        for k, v in scope["headers"]:
            if k == b"if-none-match":
                inm = v
            elif k == b"accept-encoding":
                accept = v
        # the entry holds both encodings with their header values: nothing is coded per request
        gzipped = accepts_gzip(accept)
        etag, length = entry.wire[gzipped]
        headers = [
            (b"etag", etag),
            (b"cache-control", _IMMUTABLE if current_version else _REVALIDATE),
            (b"vary", b"Accept-Encoding"),
        ]
        if entry.thinned:
            headers.append((b"onemap-thinned", f"1/{1 << entry.thinned}".encode()))
        if inm is not None and _etag_matches(inm, entry.gz_etag if gzipped else entry.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if not entry.data:
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [(b"content-type", TILE_MEDIA), (b"content-length", length)]
        if gzipped:
            headers.append((b"content-encoding", b"gzip"))
        body = b"" if scope["method"] == "HEAD" else entry.gz if gzipped else entry.data
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- the full tile path ---------------------------------------------------------------------------

    async def tile_asgi(self, scope, receive, send) -> None:
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise _Reply(405, f"{scope['method']} is not allowed on tiles", {"Allow": "GET, HEAD"})
            self._ensure_poller()
            p = scope["path_params"]
            entry, current = await self._tile(
                p.get("collection_id"), p["tms"], p["z"], p["y"], p["x"], scope, receive
            )
            if entry is None:
                return  # the client went away
            address = (p.get("collection_id"), p["tms"], int(p["z"]), int(p["x"]), int(p["y"]))
            await self._send_tile(scope, send, entry, current, address)
        except _Reply as reply:
            body = json.dumps(problems.body(reply.status, reply.detail)).encode()
            headers = [(b"content-type", problems.MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _tile(self, collection, tms, zs, ys, xs, scope, receive) -> tuple[Entry | None, bool]:
        bad = [f"{n}={v!r}" for n, v in (("z", zs), ("y", ys), ("x", xs)) if not (v.isascii() and v.isdigit())]
        if bad:
            raise _Reply(400, f"tile indexes must be non-negative integers: {', '.join(bad)}")
        z, y, x = int(zs), int(ys), int(xs)
        tileset_id = collection or DATASET
        try:
            tileset = self.engine.tileset(tileset_id)
        except UnknownTileset:
            raise _Reply(404, f"no tiles for collection {collection!r}: it is unknown or not published") from None
        grid = GRIDS.get(tms)
        if grid is None:
            raise _Reply(404, f"unknown tile matrix set {tms!r}; known: {', '.join(GRIDS)}")
        try:
            grid.check(z, x, y)
        except TileOutOfRange as err:
            raise _Reply(404, str(err)) from None
        params = self._params(scope)
        if params.get("f", "mvt") not in ("mvt", "pbf"):
            raise _Reply(400, f"f={params['f']!r} is not offered for tiles; tiles are f=mvt")
        where, filter_key = self._filter(tileset, params)
        if "v" in params:
            if not params["v"].isdigit():
                raise _Reply(400, f"v={params['v']!r} must be a data version (an integer)")
            if int(params["v"]) > self.versions.get(tileset_id, 0):
                await run_in_threadpool(self.refresh)
        current = params.get("v") == str(self.versions.get(tileset_id))
        # each view (role, streets, grids: gis.security) has its own tiles; the public's is ""
        key: Key = (tileset_id, tms, z, x, y, view_filter_key(current_principal(), filter_key))
        entry = self.cache.get_memory(key)
        if entry is not None:
            return entry, current
        entry = await self._single_flight(key, lambda: self.engine.plan(tileset_id, grid, z, x, y, where), receive)
        return entry, current

    def _params(self, scope) -> dict[str, str]:
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        unknown = sorted({k for k, _ in pairs} - _PARAMS)
        if unknown:
            raise _Reply(400, f"unknown query parameter(s) {', '.join(unknown)}; tiles take {', '.join(sorted(_PARAMS))}")
        return dict(pairs)

    def _filter(self, tileset: Tileset, params: dict[str, str]):
        text = params.get("filter")
        if text is None:
            if "filter-lang" in params:
                raise _Reply(400, "filter-lang given without a filter")
            return None, ""
        if tileset.is_dataset:
            raise _Reply(400, "filter applies to a collection's tiles (/collections/{id}/tiles/...), not /tiles")
        if params.get("filter-crs") not in (None, metadata.CRS84, "http://www.opengis.net/def/crs/EPSG/0/4490"):
            raise _Reply(400, f"filter-crs {params['filter-crs']!r} is not supported; use CRS84")
        if any(h.protected and h.id == tileset.id for h in tileset.heat):
            raise _Reply(
                400,
                "filters are not offered on heatmaps of people: two filtered views could be subtracted to "
                "isolate fewer than k people; use the indicators' own tilesets (see /stats/indicators)",
            )
        layer = self.store.catalog[tileset.source_of(tileset.layers[0].id)]
        try:
            clause = filters.where_clause(layer, self.store.tables[layer.id], text, params.get("filter-lang"))
        except filters.FilterError as err:
            raise _Reply(400, f"invalid filter: {err}") from None
        return {layer.id: clause}, f"{params.get('filter-lang', 'cql2-text')}:{text}"

    async def _single_flight(self, key: Key, plan_factory, receive) -> Entry | None:
        flight = self._inflight.get(key)
        if flight is None:
            job = RenderJob()
            # a task runs in a copy of the caller's context: their principal decides what the plan holds
            task = asyncio.ensure_future(self._render_miss(key, plan_factory, job))
            flight = (task, job, [0])
            self._inflight[key] = flight
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        task, job, waiters = flight
        waiters[0] += 1
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiters[0] -= 1
            watcher.cancel()
        if task not in done:
            if waiters[0] == 0 and not task.done():
                task.cancel()  # a statement awaited on the loop: psycopg cancels it in the server
                await run_in_threadpool(job.cancel)  # one running in a render thread
            return None
        try:
            return task.result()
        except Cancelled:
            raise _Reply(503, "the tile's rendering was cancelled; retry") from None
        except (OperationalError, DBAPIError) as err:
            LOG.warning("tile %s failed: %s", key, err)
            raise _Reply(503, "the store could not render this tile in time; retry later", {"Retry-After": "5"}) from None

    async def _render_miss(self, key: Key, plan_factory, job: RenderJob) -> Entry:
        plan = plan_factory()
        if self.engine.on_loop(plan):
            entry = await self._produce_on_loop(key, plan)
            if entry is not None:
                return entry
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._renderers, context.run, self._produce, key, lambda: plan, job
        )

    async def _produce_on_loop(self, key: Key, plan) -> Entry | None:
        """`_produce` for a tile the engine renders on the loop (tiles.render_async); None when another
        process is rendering it: the thread path waits for that one's tile."""
        # the disk read stays on the loop: a WAL reader waits on no writer's lock, and this one index
        # lookup (~7 us, pages in the OS's cache) costs less than the hop to a thread that would do it
        entry, token = self.cache.lookup(key)
        if entry is not None:
            return entry
        with self.cache.flight(key, block=False) as found:
            if found is False:
                return None
            return self._keep(key, await self.engine.render_on_loop(plan), token)

    def produce(self, tileset_id: str, tms: str, z: int, x: int, y: int) -> Entry:
        """One unfiltered tile from the cache, or rendered and cached (synchronous: seed, export)."""
        grid = GRIDS[tms]
        # the caller's view in the key, as for requests: a seed run as staff fills staff's tiles only
        key: Key = (tileset_id, tms, z, x, y, view_filter_key(current_principal(), ""))
        return self._produce(key, lambda: self.engine.plan(tileset_id, grid, z, x, y), RenderJob())

    def _produce(self, key: Key, plan_factory, job: RenderJob) -> Entry:
        entry, token = self.cache.lookup(key)  # the disk cache, or another process's render
        if entry is not None:
            return entry
        with self.cache.flight(key) as entry:  # another process rendering it: its tile, when done
            if entry is not None:
                return entry
            return self._keep(key, self.engine.render(plan_factory(), job), token)

    def _keep(self, key: Key, rendered: Rendered, token) -> Entry:
        data = b"" if rendered.empty else rendered.data
        entry = Entry(data, _etag(data), rendered.step)
        self.cache.put(key, entry, token)
        return entry

    def close(self) -> None:
        """Store the tiles still queued for the disk and close the tile connections."""
        self._renderers.shutdown(wait=True, cancel_futures=True)
        self.cache.flush()
        self.engine.close()

    # -- JSON documents -------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return self.settings.server.public_url

    def offers(self, collection_id: str | None) -> bool:
        """Whether the current caller may have the tiles of a collection (None: the whole city's)."""
        try:
            self.engine.tileset(collection_id or DATASET)
        except UnknownTileset:
            return False
        return True

    def _tileset_or_404(self, request: Request) -> Tileset:
        collection = request.path_params.get("collection_id")
        try:
            return self.engine.tileset(collection or DATASET)
        except UnknownTileset:
            raise problems.Problem(404, f"no tiles for collection {collection!r}: it is unknown or not published") from None

    @staticmethod
    def _grid_or_404(request: Request):
        tms = request.path_params["tms"]
        if tms not in GRIDS:
            raise problems.Problem(404, f"unknown tile matrix set {tms!r}; known: {', '.join(GRIDS)}")
        return GRIDS[tms]

    async def _fresh(self) -> None:
        if time.monotonic() - self._last_sync > self.sync_seconds:
            await run_in_threadpool(self.refresh)

    async def matrix_sets(self, request: Request) -> JSONResponse:
        return JSONResponse(metadata.tile_matrix_sets(self.base))

    async def matrix_set(self, request: Request) -> JSONResponse:
        return JSONResponse(metadata.tile_matrix_set(self._grid_or_404(request)))

    async def tilesets(self, request: Request) -> JSONResponse:
        tileset = self._tileset_or_404(request)
        await self._fresh()
        return JSONResponse(metadata.tilesets_list(self.base, tileset, self.versions, self.meta))

    async def tileset(self, request: Request) -> JSONResponse:
        tileset = self._tileset_or_404(request)
        grid = self._grid_or_404(request)
        await self._fresh()
        if request.query_params.get("f") == "tilejson":
            return await self.tilejson(request)
        doc = metadata.tileset_metadata(
            self.base, tileset, grid, self.versions[tileset.id], self.meta, self.engine.budget
        )
        return JSONResponse(doc)

    async def tilejson(self, request: Request) -> JSONResponse:
        tileset = self._tileset_or_404(request)
        grid = self._grid_or_404(request)
        if grid.id != "WebMercatorQuad":
            raise problems.Problem(
                404, "TileJSON describes WebMercatorQuad tiles only; see the tileset metadata for other sets"
            )
        await self._fresh()
        return JSONResponse(metadata.tilejson(self.base, tileset, self.versions[tileset.id], self.meta))

    async def style(self, request: Request) -> JSONResponse:
        collection = request.path_params.get("collection_id")
        style_id = request.path_params["style_id"]
        if style_id != ("default" if collection else "onemap"):
            raise problems.Problem(404, f"no style {style_id!r}; use {'default' if collection else 'onemap'}")
        tileset = self._tileset_or_404(request)
        url = f"{self.base}{metadata.tileset_path(tileset)}/WebMercatorQuad/tilejson.json"
        await self._fresh()
        paints = await run_in_threadpool(self._heat_paints, tileset)
        title = tileset.layers[0].title if collection else "OneMap"
        return JSONResponse(styles.style(self.base, tileset, url, title, paints))

    def _heat_paints(self, tileset: Tileset) -> dict:
        cells = self.engine.heat_tiles.cells
        versions = self.engine.layer_versions
        return {h.id: heatmap_style.paint(cells, h, versions.get(h.source, 0)) for h in tileset.heat}

    def _routes(self) -> list[BaseRoute]:
        tile_app = _TileApp(self)
        get = ["GET", "HEAD"]
        routes: list[BaseRoute] = [
            Route("/tileMatrixSets", self.matrix_sets, methods=get),
            Route("/tileMatrixSets/{tms}", self.matrix_set, methods=get),
            Route("/styles/{style_id}/style.json", self.style, methods=get),
            Route("/collections/{collection_id}/styles/{style_id}/style.json", self.style, methods=get),
        ]
        for prefix in ("/tiles", "/collections/{collection_id}/tiles"):
            routes += [
                Route(prefix, self.tilesets, methods=get),
                Route(prefix + "/{tms}", self.tileset, methods=get),
                Route(prefix + "/{tms}/tilejson.json", self.tilejson, methods=get),
                Route(prefix + "/{tms}/{z}/{y}/{x}", tile_app),
            ]
        return routes


class _TileApp:
    """A raw ASGI endpoint (starlette treats a plain callable object as an ASGI app)."""

    def __init__(self, service: TileService):
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        await self.service.tile_asgi(scope, receive, send)


def params_f_bad(scope) -> bool:
    query = scope.get("query_string", b"")
    return b"f=" in query and any(k == "f" and v not in ("mvt", "pbf") for k, v in parse_qsl(query.decode("latin-1")))


async def _disconnected(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
