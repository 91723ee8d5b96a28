"""schemathesis against /openapi, on both backends: whatever the document allows (and, in negative
mode, what it forbids) the server answers without a 5xx.

The document is made readable offline by tests.schemathesis_support. One aggregate collection
stands for all of them: they share one provider and one set of parameters.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from tests.schemathesis_support import local, server_errors

EXAMPLES = 3


@pytest.fixture(scope="module")
def operations(live_server):
    document = httpx.get(f"{live_server}/openapi", params={"f": "json"}, timeout=60).json()
    schema = schemathesis.openapi.from_dict(local(document))
    chosen, aggregate_seen = [], set()
    for result in schema.get_all_operations():
        if hasattr(result, "err"):
            pytest.fail(f"an operation of /openapi cannot be read: {str(result.err())[:300]}")
        operation = result.ok()
        if operation.method.upper() not in ("GET", "HEAD", "POST", "OPTIONS"):
            continue
        if operation.path.startswith("/collections/agg_"):
            shape = operation.method + operation.path.split("/", 3)[-1]
            if shape in aggregate_seen:
                continue
            aggregate_seen.add(shape)
        chosen.append(operation)
    assert len(chosen) > 30
    return chosen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_operation_answers_with_a_server_error(live_server, operations, mode):
    calls, failures = server_errors(operations, mode, live_server, EXAMPLES)
    assert calls > len(operations)
    assert not failures, f"{len(failures)} server errors in {calls} calls:\n" + "\n".join(failures[:30])
