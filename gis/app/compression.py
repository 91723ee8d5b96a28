"""gzip for text answers (JSON, GeoJSON, HTML, CSV...) to clients that accept it.

A page of 1,000 buildings is ~580 KB of GeoJSON and ~100 KB gzipped: on a city intranet's slower
links (district offices, the wall's PC) the transfer, not the server, is most of the wait. Plain
ASGI around the Starlette app, inside the tiles' fast path: tiles are stored gzipped and answered
by tiles.api itself, already encoded, so nothing here touches them, nor answers already encoded,
event streams, or bodies under `MINIMUM` bytes (the gzip header and a thread hop cost more than
they save).

ETags pass through unchanged. The only ETags on these answers are the items' (gis.edit), which
name the stored row's version, not the bytes: the same for the JSON and the HTML of an item, and so
for its gzipped bytes too. Edits send them back in If-Match, which compares strongly: a changed
or weakened ETag on the gzipped GET (Apache's "-gzip" suffix) made every browser's If-Match fail
with 412. These answers are never revalidated with If-None-Match, and `Vary: Accept-Encoding`
keeps caches from handing one encoding to a client that asked for the other.

Only gzip: brotli would need a package OneMap does not depend on (`brotli` on PyPI).
"""

from __future__ import annotations

import zlib

from starlette.concurrency import run_in_threadpool

MINIMUM = 1024
# zlib level, measured on a page of 1,000 buildings (565 KB of GeoJSON; best of 15 on this 2-core
# host): level 1 3.6 ms for 21.3% of the bytes, 4 7.9 ms for 18.9%, 6 12.7 ms for 17.7%, 9 31 ms for
# 17.2%. Level 6 would spend 9 ms more of the 2 CPUs to save 20 KB, 2 ms of a 100 Mbit/s intranet
# link: the CPU is the scarcer of the two (bench/README.md, "Compression")
LEVEL = 1
THREAD_BYTES = 64 * 1024  # compressing more than this would hold the event loop for over ~0.5 ms
_TEXT = frozenset({
    "application/json", "application/geo+json", "application/problem+json", "application/schema+json",
    "application/ld+json", "application/javascript", "application/xml", "application/vnd.oai.openapi+json",
    "image/svg+xml", "text/html", "text/csv", "text/plain", "text/css", "text/javascript", "text/xml",
})
_accepts: dict[bytes, bool] = {}


def accepts_gzip(header: bytes | None) -> bool:
    """Whether an Accept-Encoding value allows gzip (`gzip`, `x-gzip` or `*`, with q above 0)."""
    if not header:
        return False
    known = _accepts.get(header)
    if known is None:
        known = _parse(header.decode("latin-1"))
        if len(_accepts) > 1000:  # browsers send a handful of distinct values; bound the odd ones
            _accepts.clear()
        _accepts[header] = known
    return known


def _parse(value: str) -> bool:
    weights: dict[str, float] = {}
    for part in value.split(","):
        coding, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, number = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(number)
                except ValueError:
                    q = 0.0
        weights[coding.strip().lower()] = q
    for name in ("gzip", "x-gzip"):
        if name in weights:
            return weights[name] > 0
    return weights.get("*", 0.0) > 0


def gzip_bytes(data: bytes, level: int = LEVEL) -> bytes:
    return zlib.compress(data, level, wbits=31)  # 31: the gzip container


def compressible(status: int, headers) -> bool:
    """A text answer not already encoded, nor a range of one (206: its offsets are the plain bytes')."""
    if status in (204, 206, 304):
        return False
    kind = None
    for name, value in headers:
        name = name.lower()
        if name in (b"content-encoding", b"content-range"):
            return False
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower().decode("latin-1")
    if kind is None:
        return False
    return kind in _TEXT or kind.endswith(("+json", "+xml"))


def add_vary(headers: list, value: bytes) -> list:
    for i, (name, old) in enumerate(headers):
        if name.lower() == b"vary":
            if value.lower() not in old.lower() and old.strip() != b"*":
                headers[i] = (name, old + b", " + value)
            return headers
    headers.append((b"vary", value))
    return headers


def wrap(app, level: int = LEVEL, minimum: int = MINIMUM):
    """ASGI middleware gzipping text answers over `minimum` bytes for clients that accept gzip."""

    async def compressing(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        wanted = accepts_gzip(next((v for k, v in scope["headers"] if k == b"accept-encoding"), None))
        start: dict | None = None
        stream = None  # a compressor, once an answer in several parts is being gzipped
        passing = False

        async def sending(message):
            nonlocal start, stream, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                if not compressible(message["status"], message.get("headers", [])):
                    passing = True
                    await send(message)
                    return
                message["headers"] = add_vary(list(message.get("headers", [])), b"Accept-Encoding")
                if not wanted:
                    passing = True
                    await send(message)
                    return
                start = message  # held until the body says whether it is worth compressing
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            if stream is None and start is not None:
                if not more and len(body) < minimum:
                    await send(start)
                    passing = True
                    await send(message)
                    return
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-encoding", b"gzip"))
                if not more:  # the whole answer at once (every Response): one compress, exact length
                    packed = await run_in_threadpool(gzip_bytes, body, level) if len(body) > THREAD_BYTES else gzip_bytes(body, level)
                    headers.append((b"content-length", str(len(packed)).encode()))
                    await send({**start, "headers": headers})
                    passing = True
                    await send({**message, "body": packed})
                    return
                stream = zlib.compressobj(level, zlib.DEFLATED, 31)
                await send({**start, "headers": headers})
                start = None
            chunk = stream.compress(body) + (stream.flush(zlib.Z_SYNC_FLUSH) if more else stream.flush())
            await send({**message, "body": chunk})

        await app(scope, receive, sending)

    return compressing
