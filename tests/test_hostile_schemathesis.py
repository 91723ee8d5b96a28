"""schemathesis against /openapi as served, for the anonymous public, staff and admin, on both backends:
whatever a role's document allows (and, in negative mode, what it forbids) the server answers
without a 5xx, and schemathesis reads every operation of it.

On the shipped roles file (tests.security_support.security_server), each role with its own key on
every call. The document is read exactly as the role gets it: it refers to nothing outside itself.
Operations of one shape are tried once: the aggregate collections share one provider and one set of
parameters, and the tiles, styles and viewers of every collection share their handlers. PUT, PATCH
and DELETE are left to tests/test_edits_openapi.py (they change the shared city); a HEAD is the GET's
handler without the body, tried only on tiles, whose fast path answers HEAD itself.
"""

from __future__ import annotations

import re

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from tests.schemathesis_support import server_errors
from tests.security_support import api_key, security_server

EXAMPLES = 3
ROLES = ("public", "staff", "admin")
_SHARED = re.compile(r"^/collections/[^/]+/(tiles|styles|viewer)")
_TILE = re.compile(r"/tiles/\{tileMatrixSetId\}/\{tileMatrix\}")


@pytest.fixture(scope="module")
def server(store):
    with security_server(store) as url:
        yield url, {role: api_key(store, role, subject=f"schemathesis-{role}") for role in ROLES if role != "public"}


def _headers(keys: dict, role: str) -> dict:
    return {"Authorization": f"Bearer {keys[role]}"} if role in keys else {}


def chosen_operations(document: dict) -> list:
    schema = schemathesis.openapi.from_dict(document)
    chosen, shapes = [], set()
    for result in schema.get_all_operations():
        if hasattr(result, "err"):
            pytest.fail(f"an operation of /openapi cannot be read: {str(result.err())[:300]}")
        operation = result.ok()
        method = operation.method.upper()
        if method not in ("GET", "HEAD", "POST", "OPTIONS"):
            continue
        if method == "HEAD" and not _TILE.search(operation.path):
            continue
        path = operation.path
        if path.startswith("/collections/agg_") or _SHARED.match(path):
            names = sorted(p.name for p in operation.iter_parameters())
            shape = (method, re.sub(r"^/collections/[^/]+", "", path), "agg" in path, tuple(names))
            if shape in shapes:
                continue
            shapes.add(shape)
        chosen.append(operation)
    return chosen


@pytest.fixture(scope="module")
def operations(server) -> dict[str, list]:
    url, keys = server
    chosen = {}
    for role in ROLES:
        response = httpx.get(f"{url}/openapi", params={"f": "json"}, headers=_headers(keys, role), timeout=120)
        assert response.status_code == 200, response.text[:300]
        chosen[role] = chosen_operations(response.json())
        assert len(chosen[role]) > 40
    return chosen


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_operation_answers_with_a_server_error(server, operations, role, mode):
    url, keys = server
    calls, failures = server_errors(operations[role], mode, url, EXAMPLES, headers=_headers(keys, role))
    assert calls > len(operations[role])
    assert not failures, f"{len(failures)} server errors in {calls} calls:\n" + "\n".join(failures[:30])
