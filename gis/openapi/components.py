"""The shared definitions of OneMap's /openapi: parameters, responses and schemas every family refers to.

Written for OneMap from what its routes answer (problem details for every error, pygeoapi's JSON
for the Features documents) and from the OGC API standards' descriptions of the same parameters;
nothing here is fetched or copied. pygeoapi's document refers to the OGC's published files for
most of these; gis.openapi.references points those references here, so the document reads offline.
"""

from __future__ import annotations

import copy

from gis.crs import SUPPORTED_CRS

PROBLEM_MEDIA = "application/problem+json"


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- schemas ---------------------------------------------------------------------------------------

_LINK = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {"type": "string", "description": "the target, an absolute URL (a URI template when templated)"},
        "rel": {"type": "string", "description": "the relation, e.g. self, alternate, next, items, data"},
        "type": {"type": "string", "description": "the media type of the target"},
        "hreflang": {"type": "string"},
        "title": {"type": "string"},
        "length": {"type": "integer"},
        "templated": {"type": "boolean"},
    },
}
_LINKS = {"type": "array", "items": ref("schemas", "link")}
# RFC 9457 problem details, with pygeoapi's code/description beside them (gis.app.problems.body)
_PROBLEM = {
    "type": "object",
    "required": ["status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string", "description": "the HTTP status phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what exactly is wrong with the request, or why it failed"},
        "code": {"type": "string", "description": "the OGC exception code, e.g. InvalidParameterValue, NotFound"},
        "description": {"type": "string", "description": "the detail again, where OGC clients read it"},
    },
}
_GEOMETRY = {
    "type": "object",
    "description": "a GeoJSON geometry (RFC 7946), in the CRS the response's Content-Crs names",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                            "MultiPolygon", "GeometryCollection"]},
        "coordinates": {"type": "array"},
        "geometries": {"type": "array", "items": {"type": "object"}},
    },
}
_FEATURE = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "geometry": {**_GEOMETRY, "nullable": True},
        "properties": {"type": "object", "nullable": True},
        "links": _LINKS,
    },
}
_FEATURES = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": ref("schemas", "feature")},
        "links": _LINKS,
        "timeStamp": {"type": "string", "format": "date-time"},
        "numberMatched": {"type": "integer", "minimum": 0},
        "numberReturned": {"type": "integer", "minimum": 0},
    },
}
_EXTENT = {
    "type": "object",
    "properties": {
        "spatial": {"type": "object", "properties": {"bbox": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                                                      "crs": {"type": "string"}}},
        "temporal": {"type": "object", "properties": {"interval": {"type": "array"}, "trs": {"type": "string"}}},
    },
}
_COLLECTION = {
    "type": "object",
    "required": ["id", "links"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "links": _LINKS,
        "extent": ref("schemas", "extent"),
        "itemType": {"type": "string"},
        "crs": {"type": "array", "items": {"type": "string"}},
        "storageCrs": {"type": "string"},
    },
}
# CQL2 JSON (OGC 21-065), as OneMap's filters take it (gis.features.cql): an expression is an
# operation {"op", "args"}, a property reference, a literal, a GeoJSON geometry or a bbox
_CQL2 = {
    "description": "a CQL2-JSON expression: {\"op\": ..., \"args\": [...]}, with {\"property\": name} references",
    "oneOf": [
        {
            "type": "object",
            "required": ["op", "args"],
            "properties": {"op": {"type": "string"}, "args": {"type": "array", "items": ref("schemas", "cql2-expression")}},
        },
        {"type": "object", "required": ["property"], "properties": {"property": {"type": "string"}}},
        {"type": "object", "required": ["bbox"], "properties": {"bbox": {"type": "array", "items": {"type": "number"}}}},
        {"type": "object", "required": ["timestamp"], "properties": {"timestamp": {"type": "string"}}},
        {"type": "object", "required": ["date"], "properties": {"date": {"type": "string"}}},
        {"type": "object", "required": ["type", "coordinates"], "properties": {"type": {"type": "string"}, "coordinates": {"type": "array"}}},
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array"},
    ],
}
SCHEMAS = {
    "link": _LINK,
    "Problem": _PROBLEM,
    "geometry": _GEOMETRY,
    "feature": _FEATURE,
    "featureCollection": _FEATURES,
    "extent": _EXTENT,
    "collection": _COLLECTION,
    "cql2-expression": _CQL2,
    "landingPage": {
        "type": "object",
        "required": ["links"],
        "properties": {"title": {"type": "string"}, "description": {"type": "string"}, "links": _LINKS},
    },
    "conformance": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
    },
    "collections": {
        "type": "object",
        "required": ["collections", "links"],
        "properties": {"collections": {"type": "array", "items": ref("schemas", "collection")}, "links": _LINKS},
    },
}

# -- responses -------------------------------------------------------------------------------------

PROBLEM_CONTENT = {PROBLEM_MEDIA: {"schema": ref("schemas", "Problem")}}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def problem(description: str, headers: dict | None = None) -> dict:
    """A response whose body is problem details."""
    answer = {"description": description, "content": PROBLEM_CONTENT}
    if headers:
        answer["headers"] = headers
    return answer


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}


def _document(description: str, schema: str, media: str = "application/json") -> dict:
    return {"description": description, "content": {media: {"schema": ref("schemas", schema)}, **_HTML}}


RESPONSES = {
    "LandingPage": _document("the landing page: links to the API definition, conformance, collections, tiles, styles", "landingPage"),
    "Conformance": _document("the conformance classes this server implements", "conformance"),
    "Collections": _document("the collections the caller may read", "collections"),
    "Collection": _document("one collection: its extent, CRSs and links to items, queryables, tiles", "collection"),
    "Features": {
        "description": "a page of features; `links` has rel=next while more match",
        "content": {
            "application/geo+json": {"schema": ref("schemas", "featureCollection")},
            "application/ld+json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            **_HTML,
        },
    },
    "Feature": {
        "description": "one feature, with its ETag (the If-Match of an edit)",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {
            "application/geo+json": {"schema": ref("schemas", "feature")},
            "application/ld+json": {"schema": {"type": "object"}},
            **_HTML,
        },
    },
    "InvalidParameter": problem("a parameter is malformed or out of range; the detail names it"),
    "NotFound": problem("no such resource, or one the caller's role may not read"),
    "ServerError": problem("the store is unavailable or too slow (503 with Retry-After), or an unexpected failure"),
}

# -- parameters ------------------------------------------------------------------------------------


def _query(name: str, description: str, schema: dict, **more) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            "style": "form", "explode": False, **more}


PARAMETERS = {
    "bbox": _query(
        "bbox", "features whose geometry meets this box: minx,miny,maxx,maxy (six numbers with heights), "
        "in CRS84 unless bbox-crs names another",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
    ),
    "bbox-crs": _query("bbox-crs", "the CRS of bbox, as a URI", {"type": "string", "enum": list(SUPPORTED_CRS)}),
    "crs": _query("crs", "the CRS of the answer's coordinates, as a URI", {"type": "string", "enum": list(SUPPORTED_CRS)}),
    "datetime": _query(
        "datetime", "an instant or an interval (RFC 3339, `..` for an open end), e.g. 2024-01-01T00:00:00Z/..",
        {"type": "string"},
    ),
    "limit": _query("limit", "how many features a page holds at most", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10}),
    "sortby": _query(
        "sortby", "properties to sort by, comma-separated; a leading - sorts descending",
        {"type": "array", "items": {"type": "string", "pattern": "^[+-]?[A-Za-z_][A-Za-z0-9_]*$"}},
    ),
    "featureId": {"name": "featureId", "in": "path", "required": True, "description": "the feature's id",
                  "schema": {"type": "string"}},
    "filter": _query("filter", "a CQL2 filter on the collection's queryables (cql2-text unless filter-lang says otherwise)",
                     {"type": "string"}),
    "filter-lang": _query("filter-lang", "the language of filter", {"type": "string", "enum": ["cql2-text", "cql2-json"],
                                                                     "default": "cql2-text"}),
    "after": _query("after", "the page after the feature of this id (the rel=next link sets it)",
                    {"type": "integer", "minimum": 0}),
}


def install(document: dict) -> dict:
    """`document`'s components with OneMap's definitions in them (OneMap's win over pygeoapi's)."""
    components = document.setdefault("components", {})
    for kind, table in (("schemas", SCHEMAS), ("responses", RESPONSES), ("parameters", PARAMETERS)):
        components.setdefault(kind, {}).update(copy.deepcopy(table))
    return document
