"""PostGIS tiles made of features are rendered on the event loop (tiles.render_async), and that path
keeps every promise of the thread path: the same bytes, budget thinning included; one statement for
many clients waiting on one tile; the statement stopped in PostgreSQL when its only client leaves;
a connection the server killed replaced without a failed tile; a statement past the statement
timeout answered 503 with Retry-After, its connection serving the next tile.

What the server does is watched from PostgreSQL itself (pg_stat_activity over a connection of the
test's own), with the layer's table locked so that a tile statement waits where it can be seen.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.oracle import read_layer
from tests.tiles_server import free_port, serve
from tests.tiles_support import cases, tile_of
from tiles.engine import TileEngine
from tiles.matrix import GRIDS

WEB = "WebMercatorQuad"
ACTIVE = (
    "SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = 'onemap' "
    "AND state = 'active' AND query LIKE '%%ST_AsMVT%%' AND pid <> pg_backend_pid()"
)


@pytest.fixture(scope="module")
def pg(built_stores, postgres_url):
    store, _ = built_stores("postgis")
    return store


@pytest.fixture(scope="module")
def watch(postgres_url):
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as conn:
        yield conn


@pytest.fixture
def server(pg, tmp_path):
    with serve(pg, free_port(), tmp_path / "cache") as (url, service):
        yield url, service


def buildings_tiles(store, n: int, z: int = 16) -> list[tuple[int, int]]:
    rows = read_layer(store, "buildings")
    picked = []
    for i in range(n):
        p = rows[(i * 104729) % len(rows)].geom.representative_point()
        picked.append(tile_of(p.x, p.y, z))
    return list(dict.fromkeys(picked))


def wait_for(predicate, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return None


class Locked:
    """The buildings table held ACCESS EXCLUSIVE by another session: tile statements wait on it."""

    def __init__(self, store, postgres_url: str):
        self.conn = psycopg.connect(postgres_url.replace("+psycopg", ""))
        self.conn.execute(f'LOCK TABLE "{store.schema}".buildings IN ACCESS EXCLUSIVE MODE')

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def test_the_loop_renders_the_bytes_the_thread_path_renders(pg):
    engine = TileEngine(pg)
    small = TileEngine(pg, budget=2_000)  # crowded tiles go through the budget's thinning steps
    try:
        compared, thinned = 0, 0
        for tileset, tms, z, x, y in cases(pg):
            for e in (engine, small):
                plan = e.plan(tileset, GRIDS[tms], z, x, y)
                if not e.on_loop(plan):
                    continue
                on_loop = asyncio.run(e.render_on_loop(plan))
                threaded = e.render(e.plan(tileset, GRIDS[tms], z, x, y))
                assert (on_loop.data, on_loop.counts, on_loop.step) == (threaded.data, threaded.counts, threaded.step), (
                    tileset, tms, z, x, y, e.budget
                )
                compared += 1
                thinned += on_loop.step > 0
        assert compared >= 20 and thinned >= 3, (compared, thinned)
    finally:
        engine.close()
        small.close()


def test_many_clients_of_one_uncached_tile_cost_one_statement(server, pg, watch, postgres_url):
    url, _ = server
    x, y = buildings_tiles(pg, 1)[0]
    path = f"/collections/buildings/tiles/{WEB}/16/{y}/{x}"
    lock = Locked(pg, postgres_url)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(httpx.get, url + path, timeout=60) for _ in range(8)]
            assert wait_for(lambda: watch.execute(ACTIVE).fetchall()), "the tile statement never started"
            time.sleep(0.5)  # every client has asked by now
            running = watch.execute(ACTIVE).fetchall()
            assert len(running) == 1, f"one statement for eight clients, not {len(running)}"
            lock.release()
            bodies = [a.result() for a in answers]
    finally:
        if not lock.conn.closed:
            lock.release()
    assert {r.status_code for r in bodies} == {200}
    assert len({r.content for r in bodies}) == 1 and bodies[0].content


def test_a_client_that_leaves_stops_its_statement_and_the_connection_serves_the_next_tile(server, pg, watch, postgres_url):
    url, _ = server
    (x, y), (x2, y2) = buildings_tiles(pg, 2)[:2]
    lock = Locked(pg, postgres_url)
    try:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        sock.sendall(f"GET /collections/buildings/tiles/{WEB}/16/{y}/{x} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        waiting = wait_for(lambda: [r for r in watch.execute(ACTIVE).fetchall() if r[1] == "Lock"])
        assert waiting, "the tile statement never waited on the lock"
        pid = waiting[0][0]
        sock.close()
        gone = wait_for(
            lambda: not watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND query LIKE '%%ST_AsMVT%%'", (pid,)
            ).fetchall(),
            5.0,
        )
        assert gone, "the statement still runs after its only client left"
    finally:
        lock.release()
    after = httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y2}/{x2}", timeout=60)
    assert after.status_code == 200 and after.content


def test_connections_the_server_killed_are_replaced_without_a_failed_tile(server, pg, watch):
    url, _ = server
    tiles = buildings_tiles(pg, 12)
    assert len(tiles) >= 6
    first = [httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y}/{x}", timeout=60) for x, y in tiles[:3]]
    assert {r.status_code for r in first} == {200}
    killed = watch.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'onemap' AND state = 'idle' "
        "AND query LIKE '%%ST_AsMVT%%'"  # the tile connections: their last statement was a tile's
    ).fetchall()
    assert killed, "the tile connections were idle in the pool"
    pids = [pid for (pid,) in watch.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'onemap' AND query LIKE '%%ST_AsMVT%%'").fetchall()]
    assert not pids or wait_for(lambda: not watch.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchall(), 5.0)
    again = [httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y}/{x}", timeout=60) for x, y in tiles[3:]]
    assert [r.status_code for r in again] == [200] * len(again)


def test_tiles_of_many_threads_at_once_are_the_tiles_of_one_at_a_time(server, pg):
    """Sixteen clients over many distinct tiles on the loop path: every tile equals its one-by-one render."""
    url, service = server
    tiles = buildings_tiles(pg, 60, z=15)
    paths = [f"/collections/buildings/tiles/{WEB}/15/{y}/{x}" for x, y in tiles]
    results: dict[str, bytes] = {}
    lock = threading.Lock()

    def fetch(path):
        r = httpx.get(url + path, timeout=60)
        assert r.status_code in (200, 204), (path, r.status_code, r.text)
        with lock:
            results[path] = r.content

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fetch, paths))
    engine = TileEngine(pg)
    try:
        for (x, y), path in zip(tiles, paths):
            assert results[path] == engine.render(engine.plan("buildings", GRIDS[WEB], 15, x, y)).data, path
    finally:
        engine.close()


def test_a_tile_statement_past_the_statement_timeout_is_a_clean_503_and_the_next_tile_renders(pg, postgres_url, tmp_path):
    from gis.settings import Settings
    from gis.storage.store import Store

    hasty = Settings(pg.settings.database.model_copy(update={"statement_timeout_ms": 300}), pg.settings.server)
    store = Store.open(hasty, pg.catalog)  # the same city, tile statements bounded to 300 ms
    (x, y), (x2, y2) = buildings_tiles(pg, 2)[:2]
    try:
        with serve(store, free_port(), tmp_path / "cache") as (url, service):
            assert service.engine.on_loop(service.engine.plan("buildings", GRIDS[WEB], 16, x, y))
            lock = Locked(pg, postgres_url)
            try:
                started = time.monotonic()
                slow = httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y}/{x}", timeout=60)
                waited = time.monotonic() - started
            finally:
                lock.release()
            assert slow.status_code == 503, slow.text
            assert slow.headers["retry-after"] and slow.json()["status"] == 503
            assert waited < 10, "the statement timeout, not the client, ended the wait"
            after = httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y2}/{x2}", timeout=60)
            assert after.status_code == 200 and after.content
            again = httpx.get(f"{url}/collections/buildings/tiles/{WEB}/16/{y}/{x}", timeout=60)
            assert again.status_code == 200 and again.content, "the timed-out tile was not cached as an answer"
    finally:
        store.close()
