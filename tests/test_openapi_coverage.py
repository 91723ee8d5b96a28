"""/openapi describes every route the app serves, for the caller's role, and reads offline.

The routes come from the app's own router (not from a list kept here): a route added without its
description fails `test_every_route_is_in_the_admin_document`. On the shipped roles file, so the
public's document is checked against what the shipped policy withholds from it.
"""

from __future__ import annotations

import copy
import importlib.metadata
import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gis.app.factory import create_app
from tests.conftest import LiveServer, free_port, settings_for
from tests.security_support import SHIPPED_ROLES, api_key

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


class Served:
    def __init__(self, app, url: str, keys: dict[str, str]):
        self.app, self.url, self.keys = app, url, keys

    def document(self, role: str) -> dict:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role in self.keys else {}
        response = httpx.get(f"{self.url}/openapi", params={"f": "json"}, headers=headers, timeout=120)
        assert response.status_code == 200, response.text[:300]
        return response.json()


@pytest.fixture(scope="module")
def served(store) -> Iterator[Served]:
    port = free_port()
    settings = settings_for(store.settings.database.database_url, port=port, roles_file=SHIPPED_ROLES)
    settings.server.base_url = f"http://127.0.0.1:{port}"
    app = create_app(settings, store)
    keys = {role: api_key(store, role) for role in ("staff", "admin")}
    with LiveServer(app, port) as live:
        yield Served(app, live.url, keys)


def routes_of(routes, prefix: str = "") -> set[tuple[str, str]]:
    """(path template, METHOD) for every route of a starlette router, Mounts expanded."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            if isinstance(route.app, StaticFiles):
                continue  # files of a directory (/static, /vendor/*, /wall/static, /web/static): assets, not an API
            found |= routes_of(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            # a Route around a plain ASGI app (the tiles) has no methods: it answers GET and HEAD, 405 to the rest
            for method in route.methods or ("GET", "HEAD"):
                found.add((prefix + route.path, method))
    return found


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def undescribed(routes: set[tuple[str, str]], document: dict) -> set[tuple[str, str]]:
    """The (template, METHOD) pairs of `routes` that no path + method of `document` stands for."""
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item if method in METHODS}
    missing = set()
    for template, method in routes:
        pattern = _pattern(template)
        if not any(m == method and pattern.match(path) for path, m in described):
            missing.add((template, method))
    return missing


def refs(node) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolves(document: dict, target: str) -> bool:
    node = document
    for part in target.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_route_is_in_the_admin_document(served):
    routes = routes_of(served.app.app.router.routes)
    assert ("/stats", "POST") in routes and ("/tiles/{tms}/{z}/{y}/{x}", "GET") in routes  # the walk sees the app
    assert len(routes) > 50
    missing = undescribed(routes, served.document("admin"))
    assert not missing, f"routes the admin's /openapi does not describe: {sorted(missing)}"


def test_the_check_fails_on_a_route_left_out(served):
    document = served.document("admin")
    routes = routes_of(served.app.app.router.routes)
    assert not undescribed(routes, document)
    cut = copy.deepcopy(document)
    del cut["paths"]["/stats"]["post"]
    for path in [p for p in cut["paths"] if p.endswith("/tilejson.json")]:
        del cut["paths"][path]
    missing = undescribed(routes, cut)
    assert ("/stats", "POST") in missing
    assert ("/collections/{collection_id}/tiles/{tms}/tilejson.json", "HEAD") in missing
    assert ("/tiles/{tms}/tilejson.json", "GET") in missing
    assert ("/made-up", "GET") in undescribed(routes | {("/made-up", "GET")}, document)


@pytest.mark.parametrize("role", ["public", "staff", "admin"])
def test_every_reference_resolves_inside_the_document(served, role):
    document = served.document(role)
    targets = set(refs(document))
    assert targets, "no references at all: the check would prove nothing"
    assert not [t for t in targets if not t.startswith("#/")], "references leave the document"
    assert not [t for t in targets if not resolves(document, t)]
    assert document["info"]["version"] == importlib.metadata.version("onemap")
    operation_ids = [op["operationId"] for item in document["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds repeat"


def test_a_role_sees_only_what_it_may_use(served):
    public, staff, admin = (served.document(role) for role in ("public", "staff", "admin"))
    # the shipped policy: cameras are none for the public, masked for staff; population aggregate-only
    for path in ("/collections/cameras/tiles", "/collections/cameras/styles/{styleId}/style.json",
                 "/collections/cameras/items"):
        assert path not in public["paths"] and path in staff["paths"] and path in admin["paths"]
    # people's heatmaps: aggregates of a layer the public may only count
    assert "/collections/h3_residents/tiles" in public["paths"]
    if "/viewer" in admin["paths"]:
        assert "/collections/cameras/viewer" not in public["paths"] and "/collections/cameras/viewer" in admin["paths"]
    indicators = {doc_id: next(p for p in doc["paths"]["/stats"]["get"]["parameters"] if p["name"] == "indicator")["schema"]["enum"]
                  for doc_id, doc in (("public", public), ("admin", admin))}
    assert "key_persons" not in indicators["public"] and "key_persons" in indicators["admin"]
    # edits: none for the public; staff may create urban components (layers/roles/roles.yml)
    assert "post" not in public["paths"]["/collections/urban_components/items"]
    assert "post" in staff["paths"]["/collections/urban_components/items"]
    # what everyone may reach is in every document
    for path in ("/metrics", "/healthz", "/readyz", "/wall", "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
                 "/processes/{processId}/execution"):
        assert path in public["paths"], path


def test_a_tile_is_described_with_its_parameters_and_answers(served):
    tile = served.document("public")["paths"]["/collections/buildings/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"]
    document = served.document("public")
    names = {resolve(document, p)["name"] for p in tile["get"]["parameters"]}
    assert {"v", "f", "filter", "filter-lang", "filter-crs", "tileMatrixSetId", "tileMatrix", "tileRow", "tileCol"} <= names
    assert {"200", "204", "304", "400", "404", "503"} <= set(tile["get"]["responses"])
    assert "content" not in tile["head"]["responses"]["200"]


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        target = node["$ref"]
        node = document
        for part in target.removeprefix("#/").split("/"):
            node = node[part]
    return node
