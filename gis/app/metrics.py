"""Prometheus metrics at /metrics: requests by route template and status, latency histograms,
the tile cache's hit rate, the database pool's use.

Everything lives in one registry per app (no module-level collectors), so tests and workers can
build as many apps as they like. The middleware sits outside everything else, so tiles answered
by the cache's fast path are counted like any other request.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route

# seconds: tiles from memory take well under a millisecond, big /items pages and cold renders seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "(unmatched)"


class _StoreCollector:
    """Read at scrape time: the pool's state and the tile cache's counters are live values."""

    def __init__(self, store, tiles):
        self.store, self.tiles = store, tiles

    def collect(self):
        pool = self.store.engine.pool
        gauges = {
            "onemap_db_pool_size": ("connections the pool keeps open", _call(pool, "size")),
            "onemap_db_pool_checked_out": ("connections in use by a request or job now", _call(pool, "checkedout")),
            "onemap_db_pool_overflow": ("connections open beyond the pool size (negative: room left)", _call(pool, "overflow")),
        }
        for name, (doc, value) in gauges.items():
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)
        cache = getattr(self.tiles, "cache", None)
        if cache is not None:
            hits, misses = getattr(cache, "hits", 0), getattr(cache, "misses", 0)
            yield CounterMetricFamily("onemap_tile_cache_hits", "tiles served from the cache (memory or disk)", value=hits)
            yield CounterMetricFamily("onemap_tile_cache_misses", "tiles that had to be rendered", value=misses)
            ratio = hits / (hits + misses) if hits + misses else 0.0
            yield GaugeMetricFamily("onemap_tile_cache_hit_ratio", "hits / (hits + misses) since start", value=ratio)


def _call(pool, name: str):
    method = getattr(pool, name, None)
    return None if method is None else method()


class Metrics:
    def __init__(self, store, tiles=None):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "onemap_http_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "onemap_http_request_duration_seconds", "time to the end of the response, by route template",
            ["route", "method"], buckets=BUCKETS, registry=self.registry,
        )
        self.registry.register(_StoreCollector(store, tiles))
        self._templates: OrderedDict[str, str] = OrderedDict()
        self.routes = [Route("/metrics", self.endpoint, methods=["GET"])]

    async def endpoint(self, request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def wrap(self, asgi, app):
        """ASGI middleware counting every HTTP request against `app`'s route templates."""

        async def measured(scope, receive, send):
            if scope["type"] != "http":
                await asgi(scope, receive, send)
                return
            started = time.perf_counter()
            status = [500]  # what the client sees if the app raises before answering

            async def sending(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await asgi(scope, receive, sending)
            finally:
                route = _routed(scope) or self._template(app, scope)
                self.requests.labels(route, scope["method"], str(status[0])).inc()
                self.latency.labels(route, scope["method"]).observe(time.perf_counter() - started)

        return measured

    def _template(self, app, scope) -> str:
        path = scope["path"]
        known = self._templates.get(path)
        if known is not None:
            return known
        template = _match(app.router.routes, scope, "") or UNMATCHED
        self._templates[path] = template
        if len(self._templates) > 20_000:  # tile paths are unbounded; remember only recent ones
            self._templates.popitem(last=False)
        return template


def _routed(scope) -> str | None:
    """The template of the route the router (or the tiles' fast path) already chose for this
    request: matching the routes a second time is most of this middleware's cost on new paths."""
    route = scope.get("route")
    if isinstance(route, Route) and route.path_regex.match(scope["path"]):  # not one inside a Mount
        return route.path
    return None


def _match(routes, scope, prefix: str) -> str | None:
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = _match(route.routes, {**scope, **child}, prefix + route.path) if route.routes else None
            template = inner or f"{prefix}{route.path}/{{path}}"
        else:
            template = prefix + getattr(route, "path", UNMATCHED)
        if match is Match.FULL:
            return template
        partial = partial or template  # the path exists with another method (a 405)
    return partial
