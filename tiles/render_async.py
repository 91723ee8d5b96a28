"""PostGIS tile statements sent from the event loop, over asyncpg: no thread, no driver layers per tile.

A cold vector tile on PostGIS is one statement. Sent from a worker thread it cost the server more
client CPU than everything else it did for the tile: the hop to the thread and back, and the GIL
handed between a dozen threads around every wait (in process, 16 concurrent cold tiles: 0.65-0.71
ms of CPU per tile through threads, 0.53 with the same work done on the loop). Here the request's
own task sends the statement and awaits the answer. asyncpg rather than psycopg's AsyncConnection:
the same statements from one loop cost 0.065-0.07 ms of client CPU per tile against 0.16-0.185
(bench-city list, 16 concurrent, this machine), its protocol being compiled and its prepared
statements cached per connection. Plans that draw hexagons or carry a where-clause (a client's
filter, a role's view) keep the thread path (tiles.engine.on_loop): asyncpg types each parameter
from the prepared statement and refuses a value of another type, where PostgreSQL casts a psycopg
parameter, and compiled filters were written for the latter.

Connections: up to twice the pool size per process (tiles.engine), opened when needed with the tile
connections' settings (tiles.engine.tile_settings) and the data key installed on each. A dead one (a
restarted server) drops every idle one with it and the statement is retried once on a fresh
connection; errors reach the service as SQLAlchemy's, as from the thread path, so it answers them
alike (503). Cancelling the awaiting task makes asyncpg send PostgreSQL a cancel request; the
connection's next statement waits until that has been answered.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """A pyformat statement (`%(name)s`, `%%`) as PostgreSQL's own `$n`, and the names in `$n` order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


class AsyncTileConnections:
    def __init__(self, dsn: str, settings: dict[str, str], session: tuple[str, str] | None, size: int):
        self._dsn = dsn
        self._settings = settings
        self._session = session  # (setting, value) set on each new connection: the data key
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._numbered: dict[str, tuple[str, tuple[str, ...]]] = {}  # a plan's few statement texts

    async def fetch_one(self, sql: str, params: dict) -> tuple:
        self._bind_loop()
        assert self._slots is not None
        query = self._numbered.get(sql)
        if query is None:
            query = self._numbered[sql] = numbered(sql)
        text, names = query
        args = [params[name] for name in names]
        async with self._slots:
            try:
                return await self._fetch_one(text, args)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
                if _dead(err):  # the server went away: its other connections with it
                    self.close()
                    try:
                        return await self._fetch_one(text, args)
                    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as again:
                        err = again
                raise _sqlalchemy_error(sql, params, err) from err

    async def _fetch_one(self, text: str, args: list) -> tuple:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            row = await conn.fetchrow(text, *args)
        finally:
            # kept unless it is closed: after a statement's own error (a timeout) the connection is
            # fine, and after a cancellation asyncpg makes its next statement wait for the cancel's answer
            if not conn.is_closed():
                self._idle.append(conn)
        assert row is not None  # an aggregate statement: always one row
        return tuple(row)

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self._dsn, timeout=5, server_settings=self._settings, statement_cache_size=256
        )
        if self._session is not None:
            # a bound parameter: the key is not in the statement text (pg_stat_activity, logs)
            await conn.execute("SELECT set_config($1, $2, false)", *self._session)
        return conn

    def _bind_loop(self) -> None:
        """Connections belong to the loop that opened them: a new loop (a test client's) starts afresh."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)

    def close(self) -> None:
        """Close the idle connections (from any thread: it only drops their sockets)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.terminate()
            except Exception:  # already gone, or its loop closed: nothing left to release
                pass


def _dead(err: BaseException) -> bool:
    """Lost or refused connections; a statement timeout (57014) is the statement's own."""
    if isinstance(err, asyncpg.QueryCanceledError):
        return False
    return isinstance(
        err,
        (
            OSError,
            asyncpg.InterfaceError,  # "connection is closed"
            asyncpg.PostgresConnectionError,  # class 08, and a connection lost mid-statement
            asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
        ),
    )


def _sqlalchemy_error(sql: str, params: dict, err: BaseException) -> DBAPIError:
    """The error as SQLAlchemy raises a driver's, so the service answers it as on the thread path."""
    dead = _dead(err)
    kind = OperationalError if dead or isinstance(err, asyncpg.QueryCanceledError) else DBAPIError
    return kind(sql, params, err, connection_invalidated=dead)  # type: ignore[arg-type]
