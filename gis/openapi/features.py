"""pygeoapi's description of the Features routes, made to say what OneMap's routes do.

pygeoapi writes its document for its own server: a POST of a CQL2 body on every collection's
items, OPTIONS answered 200 on every items path, the landing page's schema for /conformance and
/collections, and no `filter` or `after`. OneMap's routes differ (gis/ogc/routes.py, gis/ogc/checks.py,
gis/edit/routes.py): POST on items is a Part 4 create (added where a role may, by gis.edit.openapi),
OPTIONS answers 204 with `Allow` on a layer's items and item (not on an aggregate's, which is a 400),
and items take a CQL2 filter and keyset paging.
"""

from __future__ import annotations

from gis.openapi.components import ref

_OPTIONS_ANSWER = {
    "204": {"description": "no body; `Allow` lists the methods the caller may use here (QGIS reads it to offer editing)",
            "headers": {"Allow": {"schema": {"type": "string"}, "description": "e.g. GET, HEAD, OPTIONS, POST"}}},
    "404": {"$ref": "#/components/responses/NotFound"},
}


def _collection(path: str) -> str:
    return path.split("/")[2]


def adjust(document: dict, aggregates: frozenset[str]) -> dict:
    """`document` (one role's, from pygeoapi) with its Features paths as OneMap serves them."""
    paths = document.get("paths", {})
    for path, doc_200 in (("/conformance", "Conformance"), ("/collections", "Collections")):
        get = paths.get(path, {}).get("get")
        if get is not None:
            get["responses"]["200"] = ref("responses", doc_200)
    for path, item in paths.items():
        if not path.startswith("/collections/"):
            continue
        collection = _collection(path)
        aggregate = collection in aggregates
        if path.endswith("/items"):
            # pygeoapi's CQL2 POST: OneMap filters through the query (filter, filter-lang=cql2-json)
            if str(item.get("post", {}).get("operationId", "")).startswith("getCQL2"):
                del item["post"]
            get = item.get("get")
            if get is not None:
                extra = ["after"] if aggregate else ["filter", "filter-lang", "after"]
                get["parameters"] = [*get.get("parameters", []), *(ref("parameters", name) for name in extra)]
                get["responses"]["503"] = ref("responses", "ServerError")
        elif path.endswith("/items/{featureId}"):
            get = item.get("get")
            if get is not None:
                # pygeoapi offers the collection's JSON schema here; the answer is the feature itself
                get["responses"]["200"] = ref("responses", "Feature")
                get["responses"]["503"] = ref("responses", "ServerError")
        else:
            continue
        item.pop("options", None)
        if not aggregate:
            item["options"] = _options(collection, path)
    return document


def _options(collection: str, path: str) -> dict:
    one = path.endswith("}")
    parameters = [ref("parameters", "featureId")] if one else []
    return {
        "summary": f"The methods the caller may use on {'an item' if one else 'the items'} of {collection}",
        "operationId": f"options{collection}{'Item' if one else 'Items'}",
        "tags": [collection],
        "parameters": parameters,
        "responses": _OPTIONS_ANSWER,
    }
