"""One role's /openapi: pygeoapi's Features document, completed with every other route OneMap serves.

gis.security.collections.RoleApis builds one document per role, once, and hands it here
(`document_for`). Each family of routes is described by its own module from the route's code;
this module puts them together: references made local, OneMap's own components, the Part 4
edits the role may make (gis.edit.openapi), tiles, styles, stats, processes, pages, health and
metrics, HEAD beside every GET (starlette answers it), and OneMap's version. A document with a
reference that does not resolve inside it is never served: building it raises.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
from collections.abc import Callable, Iterable

from gis.openapi import components, features, pages, references, services, tiles
from gis.security.principal import Principal

_TAGS = {
    "tiles": "OGC API - Tiles: the whole city's tiles, tile matrix sets, the city's style",
    "stats": "Indicators by area, with small-cell suppression",
    "processes": "OGC API - Processes: aggregate, synchronously",
    "pages": "Pages for people: the wall, its embed snippet, the map viewers, and their assets",
    "operations": "Health, readiness and metrics, for probes and Prometheus",
    "cases": "The case loop: report, transitions of the workflow, history (for roles that read cases)",
}


def onemap_version() -> str:
    try:
        return importlib.metadata.version("onemap")
    except importlib.metadata.PackageNotFoundError:  # a checkout run without `pip install -e .`
        return "0+unknown"


class ApiDocument:
    """`document_for` of gis.security.collections.RoleApis: (pygeoapi's document, principal) -> OneMap's."""

    def __init__(
        self,
        catalog,
        indicators,
        aggregates: Iterable[str] = (),
        tile_service=None,
        edits: Callable[[dict, Principal], dict] | None = None,
        cases: Callable[[Principal], dict[str, dict]] | None = None,
    ):
        self.catalog = catalog
        self.indicators = indicators
        self.aggregates = frozenset(aggregates)
        self.tile_service = tile_service
        self.edits = edits
        self.cases = cases  # the case loop's paths for a principal (gis.cases.openapi)
        # the app's routes (set by the factory once assembled): families the app does not serve stay out
        self.routes: list = []
        self.version = onemap_version()

    def served(self, path: str) -> bool:
        return any(getattr(route, "path", None) == path for route in self.routes)

    def __call__(self, document: dict, principal: Principal) -> dict:
        references.localise(document)
        components.install(document)
        features.adjust(document, self.aggregates)
        if self.edits is not None:
            document = self.edits(document, principal)
        titles = {layer.id: layer.title for layer in self.catalog.published}
        paths = document.setdefault("paths", {})
        parameters = document["components"].setdefault("parameters", {})
        document["components"].setdefault("schemas", {}).update(copy.deepcopy(services.SCHEMAS))
        tags = dict(_TAGS)
        if self.tile_service is not None:
            paths.update(tiles.paths(self.tile_service, principal, titles))
            parameters.update(copy.deepcopy(tiles.PARAMETERS))
            for tileset_id in tiles.tilesets(self.tile_service, principal):
                tags.setdefault(tileset_id, f"Heatmap {tileset_id}" if tileset_id not in titles else titles[tileset_id])
        if self.served("/stats"):
            paths.update(services.stats(self.indicators, principal))
        if self.served("/processes"):
            paths.update(services.processes(self.indicators))
        paths.update(services.operations())
        if self.cases is not None and self.served("/cases"):
            paths.update(self.cases(principal))
        if self.served("/wall"):
            paths.update(pages.wall())
        if self.served("/viewer") and self.tile_service is not None:
            readable = set(tiles.tilesets(self.tile_service, principal))
            collections = [layer.id for layer in self.catalog.published
                           if layer.id in readable and principal.may_read_features(layer.id)]
            paths.update(pages.viewers(collections, titles))
        _add_tags(document, tags)
        _add_head(document)
        document.setdefault("info", {})["version"] = self.version
        missing = references.unresolved(document)
        if missing:
            raise references.RemoteReference(f"/openapi refers to what it does not define: {sorted(set(missing))[:10]}")
        # one independent copy per role: the families share their constant parts
        return json.loads(json.dumps(document))


def _add_tags(document: dict, tags: dict[str, str]) -> None:
    known = {tag.get("name") for tag in document.setdefault("tags", [])}
    for name, description in tags.items():
        if name not in known:
            document["tags"].append({"name": name, "description": description})


def _add_head(document: dict) -> None:
    """HEAD beside each GET: starlette answers it on every GET route, with the GET's headers and no body."""
    answers = document.get("components", {}).get("responses", {})
    for item in document.get("paths", {}).values():
        get = item.get("get")
        if get is None or "head" in item:
            continue
        head = copy.deepcopy(get)
        head["summary"] = f"{get.get('summary', '')} (headers only)".strip()
        head["operationId"] = "head" + get.get("operationId", "")[:1].upper() + get.get("operationId", "")[1:]
        head["responses"] = {code: _bodiless(answer, answers) for code, answer in get.get("responses", {}).items()}
        item["head"] = head


def _bodiless(answer: dict, answers: dict) -> dict:
    target = answer.get("$ref", "")
    if target.startswith("#/components/responses/"):
        answer = answers.get(target.rsplit("/", 1)[-1], {"description": "see the GET"})
    return {key: copy.deepcopy(value) for key, value in answer.items() if key != "content"} or {"description": ""}
