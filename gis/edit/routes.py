"""OGC API - Features Part 4 over HTTP: POST, PUT, PATCH, DELETE (and OPTIONS) on items.

Own routes beside gis/ogc/routes.py rather than pygeoapi's transactions: pygeoapi's would need
its provider to implement create/update/delete without the request's principal, If-Match, the
grants or the problem details, and would declare Part 4 for every caller. Here each request is
checked (grants, then the body, then the precondition), written in one transaction by
gis.edit.writer, audited in that transaction, and answered only once tiles are invalidated.

Answers: 201 + Location + ETag on create (body: the stored feature); 204 + ETag on replace and
patch; 204 on delete. PUT/PATCH/DELETE need `If-Match` with the item's ETag (428 without, 412
when stale). OPTIONS lists in `Allow` what the caller may do: QGIS reads it to offer editing.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager

import shapely
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis.app import bodies
from gis.app.problems import Problem
from gis.catalog import Layer
from gis.edit import access, openapi, validate
from gis.edit.listen import ChangeListener
from gis.edit.writer import EditError, EditResult, FeatureWriter
from gis.features.query import json_value
from gis.ogc.checks import ITEM_ID, Context
from gis.storage.store import Store

LOG = logging.getLogger("onemap.edit")
MAX_BODY = bodies.MAX_BODY
PART4 = [
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
FEATURE_TYPES = ("application/geo+json", "application/json")
PATCH_TYPES = ("application/merge-patch+json", *FEATURE_TYPES)


class EditService:
    """Edits for one app: routes, the per-caller conformance, item ETags and the change listener."""

    def __init__(self, store: Store, context: Context, tiles=None, require_if_match: bool | None = None):
        self.store = store
        self.context = context
        self.tiles = tiles
        if require_if_match is None:
            require_if_match = getattr(store.settings.server, "edit_require_if_match", True)
        self.require_if_match = require_if_match
        self.writer = FeatureWriter(store, invalidate=tiles.invalidate if tiles is not None else None)
        self.listener: ChangeListener | None = None

    @property
    def routes(self) -> list[BaseRoute]:
        items, item = "/collections/{collection_id}/items", "/collections/{collection_id}/items/{item_id}"
        return [
            Route(items, self.create, methods=["POST"]),
            Route(items, self.options, methods=["OPTIONS"]),
            Route(item, self.change, methods=["PUT", "PATCH", "DELETE"]),
            Route(item, self.options, methods=["OPTIONS"]),
        ]

    # -- what other parts of the app ask -------------------------------------------------------

    def conformance(self) -> list[str]:
        """Part 4's classes, for a caller who may edit some published layer (else none)."""
        layers = [self.store.catalog[layer_id] for layer_id in sorted(self.context.published)]
        return list(PART4) if access.any_editable(layers) else []

    def openapi(self, document: dict, principal) -> dict:
        """A role's /openapi document with the edit operations it may use (gis.edit.openapi)."""
        layers = [self.store.catalog[layer_id] for layer_id in sorted(self.context.published)]
        return openapi.add_operations(document, layers, principal, self.require_if_match)

    def item_etag(self, layer_id: str, item_id: str) -> str | None:
        if not ITEM_ID.match(item_id) or layer_id not in self.context.published:
            return None
        return self.writer.etag(layer_id, int(item_id))

    @asynccontextmanager
    async def running(self):
        """The app's lifespan: the change listener (PostGIS) or the version poll (GeoPackage).
        The layer triggers they rely on are part of the schema (migration 0005, Store)."""
        import asyncio

        if self.store.postgis:
            self.listener = ChangeListener(self.store, self._changed, self._caught_up)
            task = asyncio.get_running_loop().create_task(self.listener.run())
        else:
            task = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def _changed(self, layer_id: str, bbox) -> None:
        self.writer.backfill_h3(layer_id)
        if self.tiles is not None:
            self.tiles.invalidate(layer_id, bbox)

    async def _poll(self, seconds: float = 1.0) -> None:
        """GeoPackage: no NOTIFY; a version that moved without this process is another writer's."""
        import asyncio

        seen: dict[str, int] = {}
        while True:
            try:
                versions = await run_in_threadpool(self._versions)
                moved = [layer for layer, version in versions.items() if seen.get(layer, version) != version]
                for layer in moved:
                    await run_in_threadpool(self.writer.backfill_h3, layer)
                if moved and self.tiles is not None:
                    await run_in_threadpool(self.tiles.refresh)  # invalidates layers whose version moved
                seen = versions if not moved else await run_in_threadpool(self._versions)
            except Exception:  # the store may be busy or away for a moment: the next round retries
                LOG.warning("version poll failed", exc_info=True)
            await asyncio.sleep(seconds)

    def _versions(self) -> dict[str, int]:
        meta = self.store.meta
        with self.store.engine.connect() as conn:
            return dict(conn.execute(select(meta.c.layer, meta.c.version)).all())

    def _caught_up(self) -> None:
        if self.tiles is not None:
            self.tiles.refresh()

    # -- routes ------------------------------------------------------------------------------------

    async def options(self, request: Request) -> Response:
        layer = self.context.layer(request.path_params["collection_id"])
        methods = access.allowed_methods(layer, "item_id" in request.path_params)
        return Response(status_code=204, headers={"Allow": ", ".join(methods)})

    async def create(self, request: Request) -> Response:
        layer = self.context.layer(request.path_params["collection_id"])
        access.require(layer, "create", item=False)
        body = await read_body(request, FEATURE_TYPES)
        edit = await self._validated(request, layer, body, None, patch=False)
        access.require(layer, "create", edit.values, geometry=True, item=False)
        scope = access.area_scope(layer, self.store.tables[layer.id])
        result = await self._write(
            self.writer.create, layer.id, edit.geometry, edit.values, scope=scope, on_write=_audit(self.store, edit)
        )
        location = f"{_base(request)}/collections/{layer.id}/items/{result.id}"
        document = await run_in_threadpool(self._feature, layer, result.id)
        headers = {"Location": location, "ETag": result.etag}
        return JSONResponse(document, status_code=201, media_type="application/geo+json", headers=headers)

    async def change(self, request: Request) -> Response:
        layer = self.context.layer(request.path_params["collection_id"])
        raw_id = request.path_params["item_id"]
        operation = {"PUT": "replace", "PATCH": "update", "DELETE": "delete"}[request.method]
        access.require(layer, operation)
        if not ITEM_ID.match(raw_id):
            raise Problem(404, f"no item {raw_id[:40]!r} in {layer.id}: ids are integers")
        item_id = int(raw_id)
        if_match = request.headers.get("if-match")
        if if_match is None and self.require_if_match:
            raise Problem(
                428, f"{request.method} needs If-Match: GET the item first and send its ETag, so a change made "
                "meanwhile by someone else is not overwritten", "PreconditionRequired",
            )
        scope = access.area_scope(layer, self.store.tables[layer.id])
        if operation == "delete":
            await self._write(self.writer.delete, layer.id, item_id, if_match, scope=scope, on_write=_audit(self.store, None))
            return Response(status_code=204)
        body = await read_body(request, PATCH_TYPES if operation == "update" else FEATURE_TYPES)
        edit = await self._validated(request, layer, body, item_id, patch=operation == "update")
        if operation == "update":
            access.require(layer, "update", edit.values, geometry=edit.geometry is not None)
            result = await self._write(
                self.writer.patch, layer.id, item_id, edit.geometry, edit.values, if_match, scope=scope,
                on_write=_audit(self.store, edit),
            )
        else:
            writable = access.writable_attributes(layer)
            values = {k: v for k, v in edit.values.items() if k in writable}
            access.require(layer, "replace", values, geometry=True)
            keep = frozenset(a.name for a in layer.attributes if a.name not in writable)
            result = await self._write(
                self.writer.replace, layer.id, item_id, edit.geometry, values, if_match, keep, scope=scope,
                on_write=_audit(self.store, edit),
            )
        return Response(status_code=204, headers={"ETag": result.etag})

    # -- helpers -----------------------------------------------------------------------------------

    async def _validated(self, request: Request, layer: Layer, body: bytes, item_id: int | None, patch: bool):
        try:
            crs_uri = validate.content_crs(request.headers.get("content-crs"))
            document = validate.parse_json(body)
            city = await run_in_threadpool(self.city_extent)
            check = validate.merge_patch if patch else validate.feature
            return check(document, layer, crs_uri, city, item_id)
        except validate.Invalid as err:
            raise Problem(err.status, str(err)) from None

    def city_extent(self) -> tuple[float, float, float, float] | None:
        """The union of every layer's extent: where a new or moved feature must lie (a case too)."""
        meta = self.store.meta
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(meta.c.minx, meta.c.miny, meta.c.maxx, meta.c.maxy)).all()
        boxes = [r for r in rows if r[0] is not None]
        if not boxes:
            return None  # an empty store: no city to stay inside yet
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

    async def _write(self, method, *args, **kwargs) -> EditResult:
        return await write(method, *args, **kwargs)

    def _feature(self, layer: Layer, item_id: int) -> dict:
        shown = access.writable_attributes(layer) & {a.name for a in layer.public_attributes}
        return stored_feature(self.writer, layer, item_id, shown)


def stored_feature(writer: FeatureWriter, layer: Layer, item_id: int, shown: set[str]) -> dict:
    """A row as written, as a GeoJSON feature with the attributes in `shown` (the answer of a write)."""
    row = writer.read(layer.id, item_id)
    if row is None:
        return {"type": "Feature", "id": item_id, "geometry": None, "properties": {}}
    _, values, geometry = row
    properties = {k: json_value(v) for k, v in values.items() if k in shown}
    shape = json.loads(shapely.to_geojson(geometry))
    return {"type": "Feature", "id": item_id, "geometry": shape, "properties": properties}


async def write(method, *args, what: str = "edit", **kwargs) -> EditResult:
    """Run a FeatureWriter method off the loop; its refusals and a store away become problems."""
    try:
        return await run_in_threadpool(method, *args, **kwargs)
    except EditError as err:
        code = {404: "NotFound", 403: "Forbidden", 412: "PreconditionFailed"}.get(err.status)
        raise Problem(err.status, str(err), code) from None
    except (OperationalError, DBAPIError) as err:
        LOG.warning("%s failed in the store: %s", what, str(err).splitlines()[0])
        raise Problem(
            503, f"the city store could not take the {what} right now; nothing was written: retry shortly",
            "ServiceUnavailable", {"Retry-After": "2"},
        ) from None


def _audit(store: Store, edit: validate.Edit | None):
    """The audit entry of an edit, written in its transaction (when gis.security is present)."""
    try:
        from gis.security import audit
    except ImportError:
        return None

    def record(conn, result: EditResult) -> None:
        detail = {"operation": result.operation, "version": result.version}
        if edit is not None:
            detail["properties"] = sorted(edit.values)
            detail["geometry"] = edit.geometry is not None
            if edit.repaired:
                detail["repaired"] = edit.repaired
        boxes = [b for b in (result.old_bbox, result.new_bbox) if b is not None]
        bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        target = f"{result.layer}/{result.id}"
        audit.record(store, f"edit.{result.operation}", target, bbox=bbox, features=1, detail=detail, conn=conn)

    return record


async def read_body(request: Request, media_types: tuple[str, ...]) -> bytes:
    """The body of a write: 415 for another media type, 413 over MAX_BODY."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in media_types:
        raise Problem(415, f"send the body as {' or '.join(media_types)}, not {kind or 'no Content-Type'}", "UnsupportedMediaType")
    return await bodies.read_limited(request, MAX_BODY, f"the body is over {MAX_BODY} bytes: send one feature per request")


def _base(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    if settings is not None:
        return settings.server.public_url
    return str(request.base_url).rstrip("/")
