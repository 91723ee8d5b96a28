"""/openapi describes the Part 4 edits each role may make, and they hold up under schemathesis.

On a city of this module's own (its edits touch nobody else's fixtures): the anonymous caller's
document has no edit operations; a staff member's has POST on the items of the layers staff may
create in and PUT/PATCH/DELETE on their items, with request bodies and the problem answers
(412, 428 …); layers staff may not edit have none. Then schemathesis sends what the staff
document allows (and, in negative mode, what it forbids) to the edit operations: never a 5xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode

from tests.edit_city import build
from tests.schemathesis_support import server_errors

EDITS = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("edits_openapi"), "edits_openapi")
    yield built
    cleanup()


def document(city, headers=None) -> dict:
    with city.client(headers) as client:
        response = client.get("/openapi", params={"f": "json"})
    assert response.status_code == 200, response.text[:300]
    return response.json()


def edit_operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {
        (path, method): operation
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
        if method in EDITS and operation.get("operationId", "").endswith("Item")  # not pygeoapi's CQL2 POST
    }


def test_the_anonymous_document_offers_no_edits(city):
    assert edit_operations(document(city)) == {}


def test_a_staff_document_offers_the_edits_staff_may_make(city):
    ops = edit_operations(document(city, city.staff))
    items, item = "/collections/urban_components/items", "/collections/urban_components/items/{featureId}"
    assert {(items, "post"), (item, "put"), (item, "patch"), (item, "delete")} <= set(ops)
    # buildings are the admin's here (tests.edit_city), districts nobody's
    assert not [key for key in ops if key[0].startswith(("/collections/buildings/", "/collections/districts/"))]
    post = ops[(items, "post")]
    schema = post["requestBody"]["content"]["application/geo+json"]["schema"]
    assert schema["properties"]["geometry"]["properties"]["type"]["enum"] == ["Point", "MultiPoint"]
    attributes = schema["properties"]["properties"]
    assert "status" in attributes["required"]
    assert attributes["properties"]["status"]["enum"] == ["normal", "damaged", "missing", "under_repair"]
    assert {"201", "400", "401", "403", "415"} <= set(post["responses"])
    for method in ("put", "patch", "delete"):
        responses, parameters = ops[(item, method)]["responses"], ops[(item, method)]["parameters"]
        assert {"412", "428", "404"} <= set(responses)
        assert any(p["name"] == "If-Match" and p["in"] == "header" and p["required"] for p in parameters)
    patch = ops[(item, "patch")]["requestBody"]["content"]
    assert "application/merge-patch+json" in patch and "required" not in patch["application/merge-patch+json"]["schema"]


def test_the_admin_document_adds_the_layers_only_the_admin_edits(city):
    ops = edit_operations(document(city, city.admin))
    assert ("/collections/buildings/items", "post") in ops


def test_a_key_place_patch_offers_only_what_staff_sees_unmasked(city):
    ops = edit_operations(document(city, city.staff))
    item = "/collections/key_places/items/{featureId}"
    if (item, "patch") not in ops:
        pytest.skip("staff may not patch key places in this layer set")
    offered = ops[(item, "patch")]["requestBody"]["content"]["application/merge-patch+json"]["schema"]
    assert "contact" not in offered["properties"]["properties"]["properties"]  # staff sees it masked


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_edit_operation_answers_with_a_server_error(city, mode):
    schema = schemathesis.openapi.from_dict(document(city, city.staff))  # as served: nothing to stand in for
    operations = [
        result.ok() for result in schema.get_all_operations()
        if result.ok().method.lower() in EDITS and result.ok().path.startswith("/collections/urban_components/items")
        and (result.ok().definition.raw.get("operationId") or "").endswith("Item")
    ]
    assert len(operations) == 4
    calls, failures = server_errors(operations, mode, city.url, 5, headers=city.staff, timeout=30)
    assert calls >= len(operations)
    assert not failures, f"{len(failures)} server errors in {calls} calls:\n" + "\n".join(failures[:20])
