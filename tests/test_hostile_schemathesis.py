"""schemathesis against /openapi, on both backends: whatever the document allows (and, in negative
mode, what it forbids) the server answers without a 5xx.

pygeoapi's document refers to OGC schemas on schemas.opengis.net, which this test environment
cannot fetch; those references are replaced by local stand-ins of the same kind (a query or path
parameter of the same name, a response with a description) before schemathesis reads it. One
aggregate collection stands for all of them: they share one provider and one set of parameters.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 3
_PARAMETERS = {
    "sortby": {"name": "sortby", "in": "query", "required": False, "schema": {"type": "string"}},
    "datetime": {"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"}},
    "featureId": {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
}


def _local(node):
    """A copy of the document with every remote $ref replaced by a local stand-in."""
    if isinstance(node, list):
        return [_local(v) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("http"):
        name = ref.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".json")
        if name in _PARAMETERS:
            return dict(_PARAMETERS[name])
        if "/responses/" in ref:
            return {"description": name}
        return {}
    return {k: _local(v) for k, v in node.items()}


@pytest.fixture(scope="module")
def operations(live_server):
    document = httpx.get(f"{live_server}/openapi", params={"f": "json"}, timeout=60).json()
    schema = schemathesis.openapi.from_dict(_local(document))
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
    failures: list[str] = []
    calls = [0]
    with httpx.Client(base_url=live_server, timeout=20) as http:
        for operation in operations:
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as err:  # an operation schemathesis cannot generate for in this mode
                if mode is GenerationMode.NEGATIVE:
                    continue
                raise AssertionError(f"{operation.label}: {err}") from err

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case):
                kwargs = case.as_transport_kwargs(base_url=live_server)
                calls[0] += 1
                request = dict(method=kwargs["method"], url=kwargs["url"], params=kwargs.get("params"),
                               headers=_plain(kwargs.get("headers")), content=_body(kwargs))
                try:
                    try:
                        response = http.request(**request)
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # a pooled connection the server closed after an earlier 400: once more, afresh
                        with httpx.Client(base_url=live_server, timeout=20) as fresh:
                            response = fresh.request(**request)
                except httpx.TimeoutException:
                    failures.append(f"{operation.label}: timed out for {kwargs.get('params')}")
                    return
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    failures.append(f"{operation.label}: the server dropped the connection for {kwargs.get('params')} {kwargs.get('headers')}")
                    return
                except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
                    return  # the client cannot send it: nothing reached the server
                if response.status_code >= 500:
                    failures.append(f"{operation.label} {kwargs.get('params')} -> {response.status_code} {response.text[:200]}")

            try:
                run()
            except Unsatisfiable:  # nothing to break in this operation (negative mode, no parameters)
                continue
    assert calls[0] > len(operations)
    assert not failures, f"{len(failures)} server errors in {calls[0]} calls:\n" + "\n".join(failures[:30])


def _plain(headers):
    if not headers:
        return None
    return {str(k): str(v) for k, v in headers.items() if k.lower() not in ("content-length", "host")}


def _body(kwargs):
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data") or kwargs.get("content")
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else None
