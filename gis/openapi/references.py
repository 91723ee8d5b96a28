"""pygeoapi's references to documents elsewhere, pointed at OneMap's own definitions.

pygeoapi's generated document `$ref`s the OGC's published OpenAPI files (schemas.opengis.net) and
a file of OGC API - Records on GitHub. On an intranet neither is reachable, so Swagger UI could not
expand those operations and a client generator could not read them. Each reference it makes is
named here with the local definition that stands for it (gis.openapi.components); a reference not
named raises, so a pygeoapi upgrade that adds one fails the tests instead of going out unnoticed.
"""

from __future__ import annotations

_FEATURES_1 = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml#/components/"
_LOCAL = {
    **{f"{_FEATURES_1}responses/{name}": f"#/components/responses/{name}"
       for name in ("LandingPage", "Conformance", "Collections", "Collection", "Features", "Feature",
                    "InvalidParameter", "NotFound", "ServerError")},
    **{f"{_FEATURES_1}parameters/{name}": f"#/components/parameters/{name}"
       for name in ("bbox", "datetime", "featureId", "limit", "crs", "bbox-crs")},
    "https://raw.githubusercontent.com/opengeospatial/ogcapi-records/master/core/openapi/parameters/sortby.yaml":
        "#/components/parameters/sortby",
    "https://schemas.opengis.net/cql2/1.0/cql2.json": "#/components/schemas/cql2-expression",
    # pygeoapi's `default` answer: OneMap's errors are problem details, one schema for every route
    "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/schemas/exception.yaml": "#/components/schemas/Problem",
    "https://schemas.opengis.net/ogcapi/tiles/part1/1.0/openapi/ogcapi-tiles-1.yaml#/components/schemas/link":
        "#/components/schemas/link",
}


class RemoteReference(ValueError):
    """A reference to a document elsewhere that OneMap defines no stand-in for."""


def localise(node):
    """`node` with every remote `$ref` pointed at its local definition (in place; returned)."""
    if isinstance(node, list):
        for item in node:
            localise(item)
    elif isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and not target.startswith("#"):
            local = _LOCAL.get(target)
            if local is None:
                raise RemoteReference(f"/openapi would refer to {target}, which OneMap does not define locally")
            node["$ref"] = local
        for value in node.values():
            localise(value)
    return node


def unresolved(document: dict) -> list[str]:
    """Every `$ref` in `document` that does not name something inside it."""
    missing: list[str] = []

    def walk(node) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and not _resolves(document, target):
                missing.append(target)
            for value in node.values():
                walk(value)

    walk(document)
    return missing


def _resolves(document: dict, target: str) -> bool:
    if not target.startswith("#/"):
        return False
    node = document
    for part in target[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
