"""A city of its own for the edit tests (tests/test_edits_*.py), so edits never disturb the shared
demo store other modules compare against: a small demo city in its own GeoPackage file or PostGIS
schema, served over real HTTP, with API keys for a staff member and an administrator.

Its layer files are the shipped ones plus two polygon layers made editable for the validation
tests: buildings (invalid geometry refused) and streets (invalid geometry repaired); staff may
also edit key places.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from gis.app.factory import create_app
from gis.demo.city import build_demo
from gis.settings import REPO_ROOT, DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store
from tests.conftest import POSTGRES_URL, SCHEMA, LiveServer, free_port

SCALE = 0.005
SEED = 11


@dataclass
class EditCity:
    url: str
    store: Store
    app: object
    staff: dict[str, str]  # Authorization headers
    admin: dict[str, str]

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=headers or {})


def _layers(tmp_path):
    target = tmp_path / "layers"
    shutil.copytree(REPO_ROOT / "layers", target)
    for name, repair in (("buildings", False), ("streets", True)):
        path = target / f"{name}.yml"
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        document["editing"] = {"repair": repair, "grants": [{"roles": ["admin"], "operations": ["create", "replace", "update", "delete"]}]}
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    # staff may also edit key places here, to show they cannot write the phone they see masked
    roles_file = target / "roles" / "roles.yml"
    roles = yaml.safe_load(roles_file.read_text(encoding="utf-8"))
    roles["roles"]["staff"]["edit"] = sorted({*roles["roles"]["staff"].get("edit", []), "key_places"})
    roles_file.write_text(yaml.safe_dump(roles, allow_unicode=True), encoding="utf-8")
    return target


def _drop(schema: str) -> None:
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def build(backend: str, tmp_path, name: str, **server: object):
    """(EditCity, cleanup) for one test module on one backend; `server`: ServerSettings overrides."""
    schema = f"{SCHEMA}_{name}"
    if backend == "postgis":
        url = POSTGRES_URL
        _drop(schema)
    else:
        url = f"gpkg:///{tmp_path / 'edits.gpkg'}"
    port = free_port()
    layers = _layers(tmp_path)
    server.setdefault("roles_file", layers / "roles" / "roles.yml")  # the shipped roles, not the suite's
    settings = Settings(
        DatabaseSettings(database_url=url, schema_name=schema),
        ServerSettings(
            port=port, tile_cache_dir=None, layers_dir=layers, base_url=f"http://127.0.0.1:{port}", **server
        ),
    )
    store = Store.open(settings)
    store.initialise()
    build_demo(store, scale=SCALE, seed=SEED)
    app = create_app(settings, store)
    served = app
    if getattr(app.state, "security", None) is None:  # an app that does not authenticate by itself yet
        from gis.security.service import Security

        served = Security(settings, store).wrap(app)
    from gis.security import keys

    staff, _ = keys.create(store, "grid-member-1", "staff")
    admin, _ = keys.create(store, "admin-1", "admin")
    server = LiveServer(served, port).__enter__()
    city = EditCity(server.url, store, app, {"Authorization": f"Bearer {staff}"}, {"Authorization": f"Bearer {admin}"})

    def cleanup() -> None:
        server.__exit__(None, None, None)
        store.close()
        if backend == "postgis":
            _drop(schema)

    return city, cleanup
