"""Serve a TileService over real HTTP for the tile tests: a bare starlette app, uvicorn in a thread.

The lead's full app (gis.app.create_app) mounts the same routes; these tests need only the tiles.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from gis.app import problems
from gis.settings import DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store
from tiles.api import TileService


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(database_url: str, port: int) -> Settings:
    return Settings(DatabaseSettings(database_url=database_url), ServerSettings(port=port))


@contextmanager
def serve(store: Store, port: int, cache_dir: Path | None, **service_options):
    """Yield (base_url, service) while uvicorn serves the tile routes on 127.0.0.1:port."""
    service = TileService(store, store.settings, cache_dir=cache_dir, **service_options)
    app = Starlette(routes=service.routes, exception_handlers=problems.HANDLERS)
    config = uvicorn.Config(service.wrap(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()
