"""OGC API - Features over pygeoapi: one table of routes, one dispatcher.

pygeoapi's API functions do the protocol work (links, HTML, OpenAPI, CRS negotiation);
OneMap checks the request first (gis.ogc.checks) so that errors name the problem, runs the
function off the event loop, and turns pygeoapi's errors into problem details.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from urllib.parse import urlencode

import pygeoapi.api as core_api
import pygeoapi.api.itemtypes as itemtypes_api
from pygeoapi.api import API, APIRequest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from gis.app import problems, vendor
from gis.features import cursor
from gis.ogc import checks
from gis.ogc.conformance import FEATURES
from gis.ogc.links import Links
from gis.security.collections import API_IN_USE

# (path, pygeoapi function, path parameters passed to it in order, request checks)
ROUTE_TABLE: list[tuple[str, Callable, tuple[str, ...], tuple[Callable, ...]]] = [
    ("/", core_api.landing_page, (), ()),
    ("/openapi", core_api.openapi_, (), ()),
    ("/conformance", core_api.conformance, (), ()),
    ("/collections", core_api.describe_collections, (), ()),
    ("/collections/{collection_id}", core_api.describe_collections, ("collection_id",), (checks.collection,)),
    (
        "/collections/{collection_id}/queryables",
        itemtypes_api.get_collection_queryables,
        ("collection_id",),
        (checks.collection,),
    ),
    ("/collections/{collection_id}/schema", core_api.get_collection_schema, ("collection_id",), (checks.collection,)),
    (
        "/collections/{collection_id}/items",
        itemtypes_api.get_collection_items,
        ("collection_id",),
        (checks.collection, checks.paging, checks.bbox, checks.datetime_, checks.filter_),
    ),
    (
        "/collections/{collection_id}/items/{item_id}",
        itemtypes_api.get_collection_item,
        ("collection_id", "item_id"),
        (checks.collection, checks.item_id),
    ),
]

# the HTML pages of one collection that link to its map viewer (gis.web)
_VIEWABLE = (core_api.describe_collections, itemtypes_api.get_collection_items)


class OgcFeatures:
    """Holds the pygeoapi API object for one app; built by the factory, never at import."""

    def __init__(
        self,
        api: API,
        context: checks.Context,
        extra_conformance: list[str] | None = None,
        api_for: Callable[[], API] | None = None,
        conformance_for: Callable[[], list[str]] | None = None,
        item_etag: Callable[[str, str], str | None] | None = None,
        links: Links | None = None,
        pages=None,
    ):
        self.api = api
        self.context = context
        self.conformance = FEATURES + list(extra_conformance or [])
        # per request: the API whose collections the caller may see (gis.security.collections)
        self.api_for = api_for
        # per request: classes that depend on the caller (Part 4 only for those who may edit)
        self.conformance_for = conformance_for
        # the stored row's ETag on every item (If-Match for edits, gis.edit)
        self.item_etag = item_etag
        # OneMap's tiles, styles and pages in pygeoapi's landing page and collections (gis.ogc.links)
        self.links = links
        # OneMap's pages for people (gis.web): browsers asking `/` for HTML get its front page, and
        # pygeoapi's HTML collection and items pages a link to the collection's map viewer
        self.pages = pages

    def routes(self) -> list[BaseRoute]:
        return [
            Route(path, partial(self.dispatch, function, params, request_checks), methods=["GET", "HEAD"])
            for path, function, params, request_checks in ROUTE_TABLE
        ]

    async def dispatch(
        self, function: Callable, params: tuple[str, ...], request_checks: tuple[Callable, ...], request: Request
    ) -> Response:
        if self.pages is not None and function is core_api.landing_page and self.pages.wants_front_page(request):
            return await self.pages.front_page(request)
        api_request = await APIRequest.from_starlette(request, self.api.locales)
        for check in request_checks:
            check(self.context, request, api_request)
        extra = _EXTRA_FORMATS.get(function, ())
        if not api_request.is_valid(extra):
            offered = ", ".join(f"f={f}" for f in ("json", "html", *extra))
            raise problems.Problem(400, f"unsupported output format {api_request.format!r}: use {offered}")
        args = [request.path_params[name] for name in params]
        loop = asyncio.get_running_loop()
        after = getattr(request.state, "after_id", None)
        api = self.api if self.api_for is None else await loop.run_in_executor(None, contextvars.copy_context().run, self.api_for)
        # executor threads do not inherit context: the principal (gis.security) must reach the provider
        context = contextvars.copy_context()
        context.run(API_IN_USE.set, id(api))  # pygeoapi's template config cache, per role's API
        headers, status, content = await loop.run_in_executor(
            None, context.run, _call_with_loop, loop, after, function, api, api_request, *args
        )
        if function is core_api.conformance and status == HTTPStatus.OK:
            content = self._conformance(content, api_request)
        if self.links is not None and status == HTTPStatus.OK and function in _LINKED:
            content = _with_links(content, headers, _LINKED[function](self.links, args))
        if self.pages is not None and status == HTTPStatus.OK and args and function in _VIEWABLE:
            content = self.pages.viewer_link(content, headers, args[0])
        if function is itemtypes_api.get_collection_items and status == HTTPStatus.OK:
            content = _keyset_next_link(content, request, headers)
        if function is itemtypes_api.get_collection_item and status == HTTPStatus.OK and self.item_etag is not None:
            etag = await loop.run_in_executor(None, self.item_etag, *args)
            if etag is not None:
                headers = {**headers, "ETag": etag}
        return _to_response(headers, status, content)

    def _conformance(self, content, api_request: APIRequest):
        if api_request.format == "html":
            return content
        document = json.loads(content) if isinstance(content, (str, bytes)) else content
        document["conformsTo"] = self.conformance + (self.conformance_for() if self.conformance_for else [])
        return json.dumps(document)


# formats beyond JSON and HTML, as pygeoapi offers (and links) them: CSV for a page of items
_EXTRA_FORMATS: dict[Callable, tuple[str, ...]] = {itemtypes_api.get_collection_items: ("csv",)}

# the documents OneMap adds links to, and how (a collection document, or the list of them)
_LINKED: dict[Callable, Callable[[Links, list], Callable[[dict], dict]]] = {
    core_api.landing_page: lambda links, args: links.landing,
    core_api.describe_collections: lambda links, args: links.collection if args else links.collections,
}


def _with_links(content, headers: dict, add: Callable[[dict], dict]):
    content_type = headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return content  # HTML and JSON-LD renderings keep pygeoapi's links
    document = json.loads(content) if isinstance(content, (str, bytes)) else content
    return json.dumps(add(document), ensure_ascii=False)


def _call_with_loop(loop: asyncio.AbstractEventLoop, after: int | None, function: Callable, *args):
    # Some pygeoapi functions look up the running loop (pub/sub); give the worker thread ours.
    asyncio.set_event_loop(loop)
    token = cursor.after_id.set(after)
    try:
        return function(*args)
    finally:
        cursor.after_id.reset(token)


def _keyset_next_link(content, request: Request, headers: dict):
    """Point rel=next at the page after this one by id (`after`), beside the usual offset."""
    # JSON-LD pages carry no links; pygeoapi's template also writes an empty one as invalid JSON
    content_type = headers.get("Content-Type", "")
    if "json" not in content_type or "ld+json" in content_type or "sortby" in request.query_params:
        return content
    document = json.loads(content) if isinstance(content, (str, bytes)) else content
    features = document.get("features") or []
    links = document.get("links", [])
    nexts = [link for link in links if link.get("rel") == "next"]
    if not nexts or not features or not isinstance(features[-1].get("id"), int):
        return content
    params = dict(request.query_params)
    limit = document.get("numberReturned", len(features))
    params["offset"] = str(int(params.get("offset", 0) or 0) + limit)
    params["after"] = str(features[-1]["id"])
    base = nexts[0]["href"].split("?", 1)[0]
    for link in nexts:
        link["href"] = f"{base}?{urlencode(params)}"
    return json.dumps(document, ensure_ascii=False)


def _to_response(headers: dict, status: int, content) -> Response:
    content_type = headers.get("Content-Type", "application/json")
    if status >= 400 and "html" not in content_type:
        detail, code = _pygeoapi_error(content)
        # a 503 is the store restarting or too slow (gis.features.provider.StoreBusy): say when to retry
        retry = {"Retry-After": problems.RETRY_AFTER} if status == 503 else None
        return problems.response(status, detail, code, headers=retry)
    if isinstance(content, dict):
        content = json.dumps(content)
    if "html" in content_type:
        text = content.decode() if isinstance(content, bytes) else str(content)
        response: Response = HTMLResponse(vendor.localise(text), status_code=status)
    else:
        response = Response(content, status_code=status, media_type=content_type)
    for key, value in headers.items():
        if key.lower() != "content-length":
            response.headers[key] = value
    return response


def _pygeoapi_error(content) -> tuple[str, str | None]:
    try:
        document = json.loads(content) if isinstance(content, (str, bytes)) else dict(content)
    except (ValueError, TypeError):
        return str(content)[:500], None
    return str(document.get("description") or document.get("detail") or "request failed"), document.get("code")
