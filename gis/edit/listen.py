"""Changes written to PostGIS by other systems reach the tile cache: LISTEN onemap_changes.

The layer tables' triggers (gis.edit.triggers) bump the data version and NOTIFY with the changed
bbox, whoever writes. This task, one per app, listens on its own connection and drops the tiles
under that bbox as soon as the writer commits; /stats and counts need nothing (they read the
tables and key their caches on the version). After every (re)connect it catches up with what it
may have missed: it re-reads all versions (a layer whose version moved while nobody listened is
invalidated whole).

The GeoPackage store has no NOTIFY: its triggers bump the version, and the tile service's poll of
`onemap_layers` (every second while tiles are being served) invalidates the layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import psycopg
from starlette.concurrency import run_in_threadpool

from gis.edit import triggers
from gis.storage.store import Store

LOG = logging.getLogger("onemap.edit.listen")
BBox = tuple[float, float, float, float]


def conninfo(store: Store) -> str:
    return store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    def __init__(
        self,
        store: Store,
        on_change: Callable[[str, BBox | None], None],
        on_connect: Callable[[], None],
        retry_seconds: float = 1.0,
    ):
        self.store = store
        self.on_change = on_change
        self.on_connect = on_connect
        self.retry_seconds = retry_seconds
        self.connected = asyncio.Event()

    async def run(self) -> None:
        delay = self.retry_seconds
        while True:
            try:
                await self._listen()
                delay = self.retry_seconds
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the database restarted or is unreachable: retry, never give up
                LOG.warning("change listener lost its connection (%s); retrying in %.0f s", str(err).splitlines()[0], delay)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(conninfo(self.store), autocommit=True, connect_timeout=5)
        async with conn:
            await conn.execute(f"LISTEN {triggers.CHANNEL}")
            # anything committed before LISTEN took effect is caught up by re-reading the versions
            await run_in_threadpool(self.on_connect)
            self.connected.set()
            async for note in conn.notifies():
                change = self._parse(note.payload)
                if change is not None:
                    try:
                        await run_in_threadpool(self.on_change, *change)
                    except Exception:  # one failed invalidation must not stop the listener
                        LOG.exception("invalidation after a change to %s failed", change[0])

    def _parse(self, payload: str) -> tuple[str, BBox | None] | None:
        try:
            change = json.loads(payload)
        except ValueError:
            return None
        # one database may hold several OneMap schemas (tests, staging): only ours matter
        if change.get("schema") != self.store.schema or change.get("layer") not in self.store.catalog:
            return None
        bbox = change.get("bbox")
        if not bbox or any(v is None for v in bbox):
            return change["layer"], None
        return change["layer"], tuple(float(v) for v in bbox)
