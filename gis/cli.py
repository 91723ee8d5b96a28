"""The `onemap` command: one group, one subcommand per job.

Subcommands that belong to a package (the demo city, the tile engine) live in that package
and are attached here, so each job's options sit beside its code.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import MutableMapping

import click

# name: (module, attribute). Imported when the command runs (or help lists it), so `onemap load`
# does not pay for the tile engine's or the security tools' imports; a missing module (a partial
# checkout) just leaves its command out.
PLUGGED_COMMANDS = {
    "qgis-project": ("gis.qgis.cli", "qgis_project"),
    "demo": ("gis.demo.cli", "demo"),
    "seed": ("tiles.cli", "seed"),
    "export": ("tiles.cli", "export"),
    "load-raster": ("gis.raster.cli", "load_raster"),
    "export-raster": ("gis.raster.cli", "export_raster"),
    "load": ("gis.imports.cli", "load"),
    "migrate": ("gis.storage.migrations.cli", "migrate"),
    "keys": ("gis.security.cli", "keys"),
    "audit": ("gis.security.cli", "audit"),
    "rekey": ("gis.security.cli", "rekey"),
}


class _Commands(MutableMapping):
    """click.Group.commands whose plugged entries are imported on first use."""

    def __init__(self, plugged: dict[str, tuple[str, str]]):
        self.loaded: dict[str, click.Command] = {}
        self.plugged = {name: where for name, where in plugged.items() if importlib.util.find_spec(where[0])}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded and name in self.plugged:
            module, attribute = self.plugged.pop(name)
            self.loaded[name] = getattr(importlib.import_module(module), attribute)
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.plugged.pop(name, None)
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.plugged.pop(name, None)
        self.loaded.pop(name, None)

    def __contains__(self, name) -> bool:
        return name in self.loaded or name in self.plugged

    def __iter__(self):
        return iter([*self.loaded, *self.plugged])

    def __len__(self) -> int:
        return len(self.loaded) + len(self.plugged)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """OneMap: the city's layers on one map, with one set of numbers.

    Configuration comes from ONEMAP_* environment variables (see README.md); options given
    here override them for one run.
    """


@main.command()
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", envvar="PORT", default=5000, show_default=True, type=int, help="port to listen on")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="worker processes")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None, help="postgresql://… or gpkg:///…")
@click.option("--log-level", default="warning", show_default=True)
def serve(host: str, port: int, workers: int, database_url: str | None, log_level: str) -> None:
    """Serve OGC API - Features and Tiles over HTTP.

    Answers on http://HOST:PORT/ with the landing page; /healthz and /readyz report liveness and
    readiness for load balancers and container health checks.
    """
    import uvicorn

    # Worker processes build their own app from the environment: pass the options on through it.
    os.environ["ONEMAP_HOST"] = host
    os.environ["ONEMAP_PORT"] = str(port)
    if database_url:
        os.environ["ONEMAP_DATABASE_URL"] = database_url
    _check_data_key()
    click.echo(f"OneMap serving on http://{host}:{port}/ ({workers} worker{'s' if workers > 1 else ''})")
    _listen_with_nodelay(uvicorn.Config)
    uvicorn.run(
        "gis.app.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
    )


def _check_data_key() -> None:
    """A store sealed with another data key (or a bad key setting) is a one-line error here,
    not a traceback from every worker: workers build their app after uvicorn forks them."""
    from gis.security.encryption import DataKeyError
    from gis.settings import Settings
    from gis.storage.store import Store

    try:
        store = Store.open(Settings.from_env())
    except DataKeyError as err:
        raise click.ClickException(str(err)) from None
    try:
        store.verify_key()
    except DataKeyError as err:
        raise click.ClickException(str(err)) from None
    except Exception:
        pass  # an unreachable store: the app answers 503 and retries, as it always has
    finally:
        store.close()


def _listen_with_nodelay(config_class) -> None:
    """With --workers > 1 uvicorn binds the shared socket as socket(AF_INET, SOCK_STREAM), proto 0;
    accepted sockets inherit proto 0 and asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets, so
    every keep-alive response (headers, then body) waited ~40 ms for the client's delayed ACK.
    Re-wrapping the bound socket as IPPROTO_TCP (the same socket) restores asyncio's default."""
    import socket

    bind = config_class.bind_socket

    def bind_tcp(self):
        sock = bind(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock

    config_class.bind_socket = bind_tcp


@main.command("config")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def show_config(database_url: str | None) -> None:
    """Print the pygeoapi configuration OneMap derives from layers/ and pygeoapi-config.yml."""
    import yaml

    from gis.catalog import Catalog
    from gis.ogc.config import build_config
    from gis.settings import Settings
    from gis.storage.store import Store

    settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
    catalog = Catalog.load(settings.server.layers_dir)
    store = Store.open(settings, catalog)
    try:
        meta = store.all_meta() if store.is_built() else {}
    finally:
        store.close()
    click.echo(yaml.safe_dump(build_config(settings, catalog, meta, "<store>"), allow_unicode=True, sort_keys=False))


def _plug_commands() -> None:
    commands = _Commands(PLUGGED_COMMANDS)
    for name, command in main.commands.items():  # serve, config: defined above
        commands[name] = command
    main.commands = commands


_plug_commands()


if __name__ == "__main__":
    main()
