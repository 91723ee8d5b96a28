"""Servers on the shipped roles file, callers with real tokens, and an independent masker.

The masks here are written from the rules as docs/security.md states them, in plain Python, so
the tests never take the server's SQL for the definition of what a masked value looks like.
"""

from __future__ import annotations

import datetime as dt
import re
from contextlib import contextmanager
from pathlib import Path

import httpx

from gis.app.factory import create_app
from gis.security import keys
from gis.settings import REPO_ROOT
from tests.conftest import LiveServer, free_port, settings_for

SHIPPED_ROLES = REPO_ROOT / "layers" / "roles" / "roles.yml"
JWT_SECRET = "test-only-shared-secret-of-at-least-32-bytes!"
JWT_ISSUER = "https://id.city.example/realms/onemap"
JWT_AUDIENCE = "onemap"


@contextmanager
def security_server(store, roles_file: Path = SHIPPED_ROLES, clock=None, **server):
    """The whole app on `store`, under `roles_file`, accepting HS256 JWTs from the test issuer;
    `clock` is the case loop's time (gis.cases), for tests that let deadlines pass."""
    port = free_port()
    options = {"oidc_issuer": JWT_ISSUER, "oidc_audience": JWT_AUDIENCE, "oidc_key": JWT_SECRET,
               "oidc_algorithms": ["HS256"], **server}
    settings = settings_for(store.settings.database.database_url, port=port, roles_file=roles_file, **options)
    settings.server.base_url = f"http://127.0.0.1:{port}"
    app = create_app(settings, store, **({"clock": clock} if clock is not None else {}))
    with LiveServer(app, port) as live:
        yield live.url


def client(base: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=60)


def api_key(store, role: str, subject: str | None = None, streets=None, grids=None, expires_at=None,
            departments=None) -> str:
    token, _ = keys.create(store, subject or f"test-{role}", role, streets, grids, expires_at, departments=departments)
    return token


def jwt_token(role: str, subject: str = "oidc-user", key: str = JWT_SECRET, **claims) -> str:
    import jwt

    now = dt.datetime.now(dt.UTC)
    body = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": subject, "iat": now, "exp": now + dt.timedelta(minutes=5),
            "onemap_role": role, **claims}
    return jwt.encode(body, key, algorithm="HS256")


# -- the masking rules, independently ----------------------------------------------------------------


def mask_name(value: str) -> str:
    return value[0] + "*" * (len(value) - 1) if len(value) > 1 else "*"


def mask_national_id(value: str) -> str:
    return value[:6] + "*" * (len(value) - 10) + value[-4:] if len(value) >= 11 else "*" * len(value)


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[-4:] if len(value) >= 8 else "*" * len(value)


def mask_address(value: str) -> str:
    match = re.match(r"^(.*?号楼)", value) or re.match(r"^(.*?号)", value)
    if match and len(match.group(1)) < len(value):
        return match.group(1)
    return value[:-3] + "***" if len(value) > 3 else "*" * len(value)


MASKERS = {"person_name": mask_name, "national_id": mask_national_id, "phone": mask_phone, "address": mask_address}


def masked_as_expected(layer, props: dict, original: dict) -> None:
    """Every personal attribute shown is its mask, and never the original value."""
    for attribute in layer.attributes:
        rule = MASKERS.get(attribute.sensitivity.value)
        if rule is None or attribute.name not in props or original.get(attribute.name) is None:
            continue
        got, stored = props[attribute.name], original[attribute.name]
        assert got == rule(stored), (layer.id, attribute.name, got, stored)
        assert got != stored, (layer.id, attribute.name, "a masked value equals the original")
