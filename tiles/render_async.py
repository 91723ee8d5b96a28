"""PostGIS tile statements sent from the event loop: psycopg's AsyncConnection, no thread per tile.

A cold vector tile on PostGIS is one statement. Sent from a worker thread it cost the server more
client CPU than everything else it did for the tile: the hop to the thread and back, and the GIL
handed between a dozen threads around every wait (in process, 16 concurrent cold tiles: 0.65-0.71
ms of CPU per tile through threads, 0.53 with the same work done on the loop). Here the request's
own task sends the statement and awaits the answer. Plans that draw hexagons (Python work), and
everything on the GeoPackage, keep the thread path (tiles.api); the budget loop is the engine's.

Connections: up to twice the pool size per process (tiles.engine), opened when needed with the tile
connections' options (tiles.engine.tile_options) and the data key installed on each. A dead one (a
restarted server) drops every idle one with it and the statement is retried once on a fresh
connection; errors reach the service as SQLAlchemy's, as from the thread path, so it answers them
alike (503). Cancelling the awaiting task makes psycopg cancel the statement in the server.
"""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import pq
from sqlalchemy.exc import DBAPIError


class AsyncTileConnections:
    def __init__(self, conninfo: str, options: str, session: tuple[str, str] | None, size: int):
        self._conninfo = conninfo
        self._options = options
        self._session = session  # (setting, value) set on each new connection: the data key
        self._size = size
        self._idle: list[psycopg.AsyncConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    async def fetch_one(self, sql: str, params: dict) -> tuple:
        self._bind_loop()
        assert self._slots is not None
        async with self._slots:
            try:
                return await self._fetch_one(sql, params)
            except psycopg.Error as err:
                if self._dead(err):  # the server went away: its other connections with it
                    self.close()
                    try:
                        return await self._fetch_one(sql, params)
                    except psycopg.Error as again:
                        err = again
                raise DBAPIError.instance(sql, params, err, psycopg.Error, connection_invalidated=self._dead(err)) from err

    async def _fetch_one(self, sql: str, params: dict) -> tuple:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
        finally:
            # reused only when idle again: after a cancellation psycopg has waited for the server's
            # answer to the cancel request, so the connection is normally idle then too
            if not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
                self._idle.append(conn)
            else:
                _finish(conn)
        assert row is not None  # an aggregate statement: always one row
        return row

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, options=self._options, connect_timeout=5, application_name="onemap"
        )
        if self._session is not None:
            # a bound parameter: the key is not in the statement text (pg_stat_activity, logs)
            await conn.execute("SELECT set_config(%s, %s, false)", self._session)
        return conn

    def _bind_loop(self) -> None:
        """Connections belong to the loop that opened them: a new loop (a test client's) starts afresh."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)

    @staticmethod
    def _dead(err: BaseException) -> bool:
        """Lost or refused connections; a statement timeout (QueryCanceled) is the statement's own."""
        return isinstance(err, psycopg.OperationalError) and not isinstance(err, psycopg.errors.QueryCanceled)

    def close(self) -> None:
        """Close the idle connections (from any thread: it only closes their sockets)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)


def _finish(conn: psycopg.AsyncConnection) -> None:
    try:
        conn.pgconn.finish()
    except Exception:  # already closed: nothing left to release
        pass
