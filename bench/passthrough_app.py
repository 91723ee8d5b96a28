"""The floor of a Python tile server on this machine: each tile's statement, sent, its answer returned.

GET /{i} runs the i-th statement of the bench's tile list, exactly as OneMap builds it (the raw
bound's statements, rawdb.statements), over asyncpg from the event loop, as OneMap's cold path does,
and answers the MVT bytes; an index without a statement (a tile of hexagons in OneMap) answers 204.
Nothing else: no routing, no tile plan, no cache, no single-flight, no roles, no metrics. A raw ASGI
app on the same uvicorn, workers and HTTP stack as OneMap, so its cold walk is the most that any
server written this way can reach beside PostgreSQL on these CPUs; the raw bound sends the same
statements with no HTTP server at all.

BENCH_STATEMENTS: a pickle of {"statements": [(statement in $n form, [arguments]) or None] in list
order, "settings": the session settings of OneMap's tile connections (tiles.engine.tile_settings)};
BENCH_DSN: the database. With BENCH_CACHE_DIR, each miss also goes through OneMap's own tile cache
(tiles.cache.TileCache: the disk lookup, the cross-process render lock, the tile and its ETag kept in
memory and written behind to disk), as OneMap's cold path does: the floor of a server that caches as
the issue asks.
"""

from __future__ import annotations

import os
import pickle

import asyncpg

_HEADERS = [(b"content-type", b"application/vnd.mapbox-vector-tile")]

with open(os.environ["BENCH_STATEMENTS"], "rb") as f:
    _given = pickle.load(f)
STATEMENTS: list[tuple[str, list] | None] = _given["statements"]
_SETTINGS: dict[str, str] = _given["settings"]
_idle: list[asyncpg.Connection] = []
_cache = None
if os.environ.get("BENCH_CACHE_DIR"):
    from pathlib import Path

    from tiles.api import _etag  # the ETag as OneMap makes it
    from tiles.cache import Entry, TileCache

    _dir = Path(os.environ["BENCH_CACHE_DIR"]) / "passthrough"
    _dir.mkdir(parents=True, exist_ok=True)
    _cache = TileCache(_dir)


async def _fetch(text: str, args: list):
    conn = _idle.pop() if _idle else await asyncpg.connect(os.environ["BENCH_DSN"], server_settings=_SETTINGS)
    try:
        return await conn.fetchrow(text, *args)
    finally:
        _idle.append(conn)


async def _answer(send, status: int, body: bytes = b"") -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    index = scope["path"].lstrip("/")
    if not index.isdigit() or int(index) >= len(STATEMENTS):
        await _answer(send, 200 if index == "ready" else 404)
        return
    statement = STATEMENTS[int(index)]
    if statement is None:
        await _answer(send, 204)
        return
    if _cache is None:
        body = await _render(statement)
    else:
        key = ("passthrough", "WebMercatorQuad", int(index), 0, 0, "")
        entry, token = _cache.lookup(key)
        if entry is None:
            with _cache.flight(key, block=False):
                data = await _render(statement)
                entry = Entry(data, _etag(data))
                _cache.put(key, entry, token)
        body = entry.data
    await _answer(send, 200 if body else 204, body)


async def _render(statement: tuple[str, list]) -> bytes:
    row = await _fetch(*statement)
    # per layer, its MVT bytes and feature count (tiles.render_postgis.rendered)
    return b"".join(bytes(row[i]) for i in range(0, len(row), 2) if row[i + 1])
