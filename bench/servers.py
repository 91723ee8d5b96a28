"""Start and stop the servers under test, one at a time, on 127.0.0.1 with the same worker count.

Every server runs under bench/serve_nodelay.py (uvicorn's own command line with TCP_NODELAY on
accepted sockets, see that file), from its own virtualenv: OneMap from .venv, tipg and pygeoapi from
bench/.venvs/<name> (PyPI releases), the bare starlette bound from OneMap's venv.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODELAY = BENCH / "serve_nodelay.py"
# OneMap's own interpreter: the one running the benchmark (bench/run.sh uses .venv/bin/python)
ONEMAP_PYTHON = Path(sys.executable)
PEER_VENVS = Path(os.environ.get("BENCH_VENVS", BENCH / ".venvs"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, python: Path, args: list[str], env: dict[str, str], ready: str, log: Path,
                 cwd: Path = BENCH, port: int | None = None, launcher: list[str] | None = None):
        self.name = name
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        launch = launcher or [str(python), str(NODELAY)]
        self.cmd = [*launch, *args, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.env = {**os.environ, **env}
        self.ready = ready
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "Server":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        out.write(f"\n$ {' '.join(self.cmd)}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting; see {self.log}")
            try:
                with urllib.request.urlopen(self.base + self.ready, timeout=30) as r:
                    if r.status == 200:
                        time.sleep(1.0)  # let every worker finish its start-up
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        # workers of a killed master may linger for a moment: wait until the port is free
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    break
            time.sleep(0.1)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def onemap(database_url: str, workers: int, cache_dir: Path | None, log: Path, nodelay: bool = True) -> Server:
    env = {"ONEMAP_DATABASE_URL": database_url, "ONEMAP_TILE_CACHE_DIR": str(cache_dir) if cache_dir else ""}
    port = free_port()
    env |= {"ONEMAP_HOST": "127.0.0.1", "ONEMAP_PORT": str(port)}
    python = ONEMAP_PYTHON
    args = ["gis.app.asgi:app_factory", "--factory", "--workers", str(workers), "--proxy-headers", "--app-dir", str(REPO)]
    launcher = None if nodelay else [str(python), "-m", "uvicorn", "--app-dir", str(REPO)]
    return Server("onemap", python, args, env, "/healthz", log, cwd=REPO, port=port, launcher=launcher)


def bare(workers: int, log: Path) -> Server:
    python = ONEMAP_PYTHON
    return Server("bare-starlette", python, ["bare_app:app", "--workers", str(workers)], {}, "/ready", log)


def passthrough(database_url: str, workers: int, statements: Path, log: Path, cache_dir: Path | None = None) -> Server:
    """bench/passthrough_app.py: OneMap's statements over asyncpg behind uvicorn, and nothing else
    (with cache_dir: and OneMap's tile cache)."""
    env = {"BENCH_STATEMENTS": str(statements), "BENCH_DSN": _libpq(database_url),
           "BENCH_CACHE_DIR": str(cache_dir) if cache_dir else "",
           "PYTHONPATH": str(REPO)}  # the cached variant uses OneMap's tiles.cache
    return Server("asyncpg-passthrough", ONEMAP_PYTHON, ["passthrough_app:app", "--workers", str(workers)], env,
                  "/ready", log)


def _libpq(database_url: str) -> str:
    # postgresql+psycopg://user@host:port/db -> postgresql://user@host:port/db
    scheme, rest = database_url.split("://", 1)
    return "postgresql://" + rest


def tipg(database_url: str, workers: int, log: Path, schema: str = "onemap") -> Server:
    env = {
        "DATABASE_URL": _libpq(database_url),
        "TIPG_DB_SCHEMAS": f'["{schema}"]',
        "TIPG_DB_TABLES": f'["{schema}.buildings", "{schema}.cameras", "{schema}.urban_components"]',
        "TIPG_DEBUG": "FALSE",
        "TIPG_DB_SPATIAL_EXTENT": "FALSE",
        "TIPG_DB_DATETIME_EXTENT": "FALSE",
    }
    python = PEER_VENVS / "tipg" / "bin" / "python"
    return Server("tipg", python, ["tipg.main:app", "--workers", str(workers)], env, "/collections", log)


def pygeoapi(database_url: str, workers: int, log: Path, workdir: Path, layers: list[str],
             bbox: tuple[float, float, float, float], schema: str = "onemap") -> Server:
    port = free_port()
    parts = urlsplit(_libpq(database_url))
    base = yaml.safe_load((REPO / "pygeoapi-config.yml").read_text())
    config = {
        "server": {
            **base["server"],
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "limits": {"default_items": 10, "max_items": 1000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": base["metadata"],
        "resources": {},
    }
    for layer in layers:
        config["resources"][layer] = {
            "type": "collection",
            "title": layer,
            "description": f"OneMap {layer}, served by pygeoapi's MVT-postgresql provider",
            "keywords": [layer],
            "extents": {"spatial": {"bbox": list(bbox), "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{
                "type": "tile",
                "name": "MVT-postgresql",
                "data": {
                    "host": parts.hostname, "port": parts.port or 5432, "dbname": parts.path.lstrip("/"),
                    "user": parts.username or "postgres", "password": parts.password or "",
                    "search_path": [schema, "public"],
                },
                "id_field": "id",
                "table": layer,
                "geom_field": "geom",
                "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/4490",
                # no `schemes` list here: non-dict options go to get_engine(), which is functools.cache'd
                # (a list is unhashable); the provider offers WebMercatorQuad anyway
                "options": {"zoom": {"min": 0, "max": 22}},
                "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
            }],
        }
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "pygeoapi-config.yml"
    oas = workdir / "pygeoapi-openapi.yml"
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    venv = PEER_VENVS / "pygeoapi" / "bin"
    with open(log, "ab") as out:
        subprocess.run([str(venv / "pygeoapi"), "openapi", "generate", str(cfg), "--output-file", str(oas)],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    env = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(oas)}
    return Server("pygeoapi", venv / "python", ["pygeoapi.starlette_app:APP", "--workers", str(workers)], env,
                  "/collections?f=json", log, port=port)
