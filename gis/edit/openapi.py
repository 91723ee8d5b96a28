"""Part 4 in /openapi: the edit operations a role may use, with their bodies and answers.

pygeoapi writes the read-only document from its configuration; the routes of gis.edit.routes
are added here to each role's copy (gis.security.collections builds one per role), so a client
or schemathesis sees POST on the items of the layers the role may create in, and PUT, PATCH and
DELETE on their items as far as the role's grants allow, with the attributes it may write.
"""

from __future__ import annotations

from collections.abc import Iterable

from gis.catalog import Layer
from gis.edit import access
from gis.openapi.components import PROBLEM_CONTENT

# problem details: the one schema of every route's errors (gis.openapi.components, in every document)
_PROBLEM = PROBLEM_CONTENT
_WHY = {
    "400": "the body is not a feature of this layer (JSON, geometry type or validity, extent, CRS, attributes); the detail says what",
    "401": "no token: send `Authorization: Bearer <token>` of a role that may edit the layer",
    "403": "the role may not make this change (operation, attribute, or an item outside its streets or grids)",
    "404": "no such item",
    "412": "If-Match does not match the item's ETag: it changed meanwhile; nothing was written",
    "413": "the body is too large: one feature per request",
    "415": "the body's Content-Type is not one this operation takes",
    "428": "If-Match is missing: GET the item and send its ETag",
    "503": "the store could not take the edit right now; nothing was written; retry after Retry-After",
}
_ETAG = {"ETag": {"description": "the item's new ETag, for the next If-Match", "schema": {"type": "string"}}}


def add_operations(document: dict, layers: Iterable[Layer], who, require_if_match: bool = True) -> dict:
    """`document` (one role's, changed in place and returned) with the edit operations of `who`."""
    paths = document.setdefault("paths", {})
    for layer in layers:
        grants = access.grants(layer, who)
        ops = {op for grant in grants for op in grant.operations}
        if not ops:
            continue
        writable = {attribute.name for attribute, masked in who.attributes(layer) if not masked}
        feature = _feature_schema(layer, writable, patch=False)
        base = f"/collections/{layer.id}/items"
        tag = [layer.id]
        if "create" in ops:
            paths.setdefault(base, {})["post"] = {
                "summary": f"Add an item to {layer.title}", "operationId": f"create{layer.id}Item", "tags": tag,
                "parameters": [_CONTENT_CRS],
                "requestBody": _body(("application/geo+json", "application/json"), feature),
                "responses": {
                    "201": {"description": "created; the body is the stored feature",
                            "headers": {"Location": {"schema": {"type": "string"}}, **_ETAG},
                            "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                    **_problems("400", "401", "403", "413", "415", "503"),
                },
            }
        item = paths.setdefault(f"{base}/{{featureId}}", {})
        if_match = dict(_IF_MATCH, required=require_if_match)
        precondition = ("412", "428") if require_if_match else ("412",)
        if "replace" in ops:
            item["put"] = {
                "summary": f"Replace an item of {layer.title}", "operationId": f"replace{layer.id}Item", "tags": tag,
                "parameters": [_FEATURE_ID, if_match, _CONTENT_CRS],
                "requestBody": _body(("application/geo+json", "application/json"), feature),
                "responses": {"204": {"description": "replaced", "headers": _ETAG},
                              **_problems("400", "401", "403", "404", *precondition, "413", "415", "503")},
            }
        patchable = writable & _narrowest(grants, "update", writable)
        if "update" in ops:
            item["patch"] = {
                "summary": f"Change some attributes (or the geometry) of an item of {layer.title} (JSON Merge Patch)",
                "operationId": f"update{layer.id}Item", "tags": tag,
                "parameters": [_FEATURE_ID, if_match, _CONTENT_CRS],
                "requestBody": _body(("application/merge-patch+json", "application/geo+json", "application/json"),
                                     _feature_schema(layer, patchable, patch=True)),
                "responses": {"204": {"description": "changed", "headers": _ETAG},
                              **_problems("400", "401", "403", "404", *precondition, "413", "415", "503")},
            }
        if "delete" in ops:
            item["delete"] = {
                "summary": f"Delete an item of {layer.title}", "operationId": f"delete{layer.id}Item", "tags": tag,
                "parameters": [_FEATURE_ID, if_match],
                "responses": {"204": {"description": "deleted"},
                              **_problems("401", "403", "404", *precondition, "503")},
            }
    return document


def _narrowest(grants, operation: str, writable: set[str]) -> set[str]:
    """Attributes a PATCH may name: every writable one if any grant is unrestricted."""
    mine = [g for g in grants if operation in g.operations]
    if any(g.attributes is None for g in mine):
        return writable
    return {a for g in mine for a in g.attributes or []}


def _feature_schema(layer: Layer, attributes: set[str], patch: bool) -> dict:
    kinds = [layer.geometry.value] + ([f"Multi{layer.geometry.value}"] if not layer.geometry.value.startswith("Multi") else [])
    if layer.geometry.value == "MultiPolygon":
        kinds = ["Polygon", "MultiPolygon"]
    geometry = {
        "type": "object", "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string", "enum": kinds}, "coordinates": {"type": "array"}},
    }
    properties = {}
    for attribute in layer.attributes:
        if attribute.name not in attributes:
            continue
        schema = {k: v for k, v in attribute.json_schema().items() if v is not None}
        # null clears an optional attribute (in a PATCH it removes the value, RFC 7396)
        properties[attribute.name] = schema if attribute.required else {"anyOf": [schema, {"type": "null"}]}
    required = [] if patch else [a.name for a in layer.attributes if a.required and a.name in attributes]
    props = {"type": "object", "properties": properties}
    if required:
        props["required"] = required
    body = {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["Feature"]}, "geometry": geometry, "properties": props},
    }
    if not patch:
        body["required"] = ["type", "geometry", "properties"]
    return body


def _body(media_types: tuple[str, ...], schema: dict) -> dict:
    return {"required": True, "content": {kind: {"schema": schema} for kind in media_types}}


def _problems(*codes: str) -> dict:
    return {code: {"description": _WHY[code], "content": _PROBLEM} for code in codes}


_FEATURE_ID = {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the item's id"}
_IF_MATCH = {"name": "If-Match", "in": "header", "schema": {"type": "string"},
             "description": "the ETag of the item as last read (GET); a stale one is refused with 412"}
_CONTENT_CRS = {"name": "Content-Crs", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "the CRS of the body's coordinates as a URI in angle brackets; default CRS84"}
