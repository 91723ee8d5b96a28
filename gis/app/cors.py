"""CORS: browser pages on other origins may read every answer OneMap gives (tiles, styles, JSON,
errors) and send it the requests its routes take.

Plain ASGI, the outermost layer of the app (gis.app.factory), so that answers made before any
route runs (the tiles' fast path, the 401/414/431 of authentication, problem details) carry the
headers too. A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here,
before authentication, since browsers send it without the Authorization header; a plain OPTIONS
still reaches the routes (the edit routes' own, which QGIS reads).

Keys travel in the Authorization header, never in cookies, so no answer allows credentials and
the default `*` (any origin) gives a page nothing it could not get with a plain request.
"""

from __future__ import annotations

import json

from starlette.routing import Match, Mount, Route

from gis.app import problems

# what the routes read from requests (edits: If-Match, Content-Type, Content-Crs; tiles:
# If-None-Match; pygeoapi: Accept-Language, Accept-Crs for Part 2 CRS negotiation)
ALLOWED_HEADERS = "Authorization, If-Match, If-None-Match, Content-Type, Content-Crs, Accept-Crs, Accept-Language"
# what the answers carry beyond the CORS-safelisted headers, for scripts to read
EXPOSED_HEADERS = (
    "ETag, Link, Location, Content-Crs, Content-Encoding, Content-Length, Allow, Retry-After, "
    "WWW-Authenticate, OneMap-Data-Version, OneMap-Thinned"
)
MAX_AGE = "7200"  # Chromium's cap: the preflight of each URL is sent at most every two hours
_READ_ONLY = ("GET", "HEAD")  # routes with a raw ASGI endpoint (tiles) and mounts (static files)


class Cors:
    """`wrap(asgi)` adds the CORS headers to every HTTP answer; `router_app` is the Starlette app
    whose routes decide which methods a preflight is told."""

    def __init__(self, origins: list[str], router_app):
        self.any = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.router_app = router_app
        exposed = (b"access-control-expose-headers", EXPOSED_HEADERS.encode())
        self._any_headers = [(b"access-control-allow-origin", b"*"), exposed]
        self._exposed = exposed

    def allowed(self, origin: bytes | None) -> bool:
        return self.any or (origin is not None and origin.decode("latin-1") in self.origins)

    def wrap(self, asgi):
        async def cors(scope, receive, send):
            if scope["type"] != "http":
                await asgi(scope, receive, send)
                return
            origin = request_method = None
            for name, value in scope["headers"]:
                if name == b"origin":
                    origin = value
                elif name == b"access-control-request-method":
                    request_method = value
            if scope["method"] == "OPTIONS" and origin is not None and request_method is not None:
                await self._preflight(scope, send, origin)
                return
            extra = self._headers_for(origin)

            async def send_with_cors(message):
                if message["type"] == "http.response.start":
                    message["headers"] = _merged(message.get("headers", []), extra, not self.any)
                await send(message)

            await asgi(scope, receive, send_with_cors)

        return cors

    def _headers_for(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if self.any:
            return self._any_headers
        if origin is not None and self.allowed(origin):
            return [(b"access-control-allow-origin", origin), self._exposed]
        return []  # the answer still says it varies by Origin (`_merged`), for caches

    async def _preflight(self, scope, send, origin: bytes) -> None:
        if not self.allowed(origin):
            await _problem(send, 403, f"origin {origin.decode('latin-1')[:100]!r} may not call this service", [(b"vary", b"Origin")])
            return
        methods = route_methods(self.router_app.router.routes, scope)
        cors = self._headers_for(origin)[:1] + ([] if self.any else [(b"vary", b"Origin")])
        if not methods:
            await _problem(send, 404, f"no resource at {scope['path'][:200]}", cors)
            return
        headers = cors + [
            (b"access-control-allow-methods", ", ".join(methods).encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def route_methods(routes, scope) -> list[str]:
    """The methods the routes matching this path take (but OPTIONS, which is the preflight's own)."""
    methods: list[str] = []
    probe = {**scope, "method": "GET"}  # a route's methods do not change whether its path matches
    for route in routes:
        match, child = route.matches(probe)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            found = list(_READ_ONLY)
        elif isinstance(route, Route) and route.methods is not None:
            found = sorted(route.methods, key=lambda m: (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else 99, m))
        else:
            found = list(_READ_ONLY)
        methods += [m for m in found if m not in methods and m != "OPTIONS"]
    return methods


_METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _merged(headers, extra, vary_origin: bool) -> list[tuple[bytes, bytes]]:
    """The answer's headers with the CORS ones; an answer's own Access-Control-* give way."""
    out = [(k, v) for k, v in headers if not k.lower().startswith(b"access-control-")]
    out += extra
    if vary_origin:
        for i, (name, value) in enumerate(out):
            if name.lower() == b"vary":
                if b"origin" not in value.lower():
                    out[i] = (name, value + b", Origin")
                break
        else:
            out.append((b"vary", b"Origin"))
    return out


async def _problem(send, status: int, detail: str, headers: list) -> None:
    body = json.dumps(problems.body(status, detail)).encode()
    raw = [(b"content-type", problems.MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
