"""Authentication in front of every route: who is asking, decided once per request.

`Authorization: Bearer <token>` carries an API key (`om_…`, gis.security.keys) or a JWT from
the OIDC provider (gis.security.tokens); `Authorization: Basic` may carry the same token as its
password, for clients (QGIS 3.22) that can send no other header. No token: the anonymous public. A token that does not
verify — malformed, unknown, revoked, expired, forged, or naming an unknown role — is a 401
problem, never a quiet downgrade to public. Roles with `url_token` (the wall's kiosk browser)
may pass `?token=` instead; the parameter is removed before routing so it never reaches links.

Also here, since they concern every route alike: oversized header and URL limits (431/414), and
one audit entry per request made with the token of an audited role (staff, admin, wall).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool

from gis.app import problems
from gis.security import audit, keys
from gis.security.principal import Principal, anonymous, reset, set_current
from gis.security.roles import Policy
from gis.security.tokens import JwtVerifier, TokenError
from gis.storage.store import Store

MAX_HEADER_BYTES = 8 * 1024  # one header line
MAX_HEADERS_BYTES = 16 * 1024  # all of them
MAX_QUERY_BYTES = 8 * 1024
KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this long


class Unauthorized(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class AuthMiddleware:
    def __init__(self, app, store: Store, policy: Policy, jwts: JwtVerifier):
        self.app = app
        self.store = store
        self.policy = policy
        self.jwts = jwts
        self.public = anonymous(policy)
        self._keys: dict[str, tuple[float, Principal]] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _oversized(scope)
        if too_big is not None:
            await _reply(send, *too_big)
            return
        try:
            principal, scope = await self._authenticate(scope)
        except Unauthorized as err:
            await _reply(send, 401, err.detail, {"www-authenticate": 'Bearer error="invalid_token"'})
            return
        token = set_current(principal)
        status = [0]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status if principal.audited else send)
        finally:
            if principal.audited:
                audit.record(
                    self.store,
                    "request",
                    scope["path"][:500],
                    filter=scope.get("query_string", b"").decode("latin-1")[:2000] or None,
                    detail={"method": scope["method"], "status": status[0]},
                    principal=principal,
                )
            reset(token)

    async def _authenticate(self, scope) -> tuple[Principal, dict]:
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1").strip()
                break
        query = scope.get("query_string", b"")
        url_token = None
        if b"token=" in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            url_token = next((v for k, v in pairs if k == "token"), None)
            if url_token is not None:
                rest = [(k, v) for k, v in pairs if k != "token"]
                scope = {**scope, "query_string": urlencode(rest).encode("latin-1")}
        if header is None and url_token is None:
            return self.public, scope
        if header is not None and url_token is not None:
            raise Unauthorized("send the token once: in the Authorization header or as ?token=, not both")
        if header is not None:
            scheme, _, credential = header.partition(" ")
            if scheme.lower() == "basic" and credential.strip():
                credential = _basic_password(credential.strip())
            elif scheme.lower() != "bearer" or not credential.strip():
                raise Unauthorized("use `Authorization: Bearer <token>` (an API key or an OIDC access token)")
            principal = await self._principal(credential.strip())
        else:
            principal = await self._principal(url_token or "")
            if not principal.rights.url_token:
                raise Unauthorized(
                    f"a {principal.role} token may not travel in the URL; send it as `Authorization: Bearer`"
                )
        return principal, scope

    async def _principal(self, credential: str) -> Principal:
        if not credential or len(credential) > 4096:
            raise Unauthorized("the token is empty or too long")
        if keys.looks_like_key(credential):
            cached = self._keys.get(credential)
            if cached is not None and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
                return cached[1]
            try:
                record = await run_in_threadpool(keys.verify, self.store, credential)
            except keys.KeyError_ as err:
                raise Unauthorized(f"{err}; ask an administrator for a valid key") from None
            principal = self._make(record.subject, record.role, record.streets, record.grids, "api_key", record.departments)
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[credential] = (time.monotonic(), principal)
            return principal
        try:
            claims = await run_in_threadpool(self.jwts.verify, credential)
        except TokenError as err:
            raise Unauthorized(str(err)) from None
        return self._make(claims.subject, claims.role, claims.streets, claims.grids, "jwt", claims.departments)

    def _make(self, subject, role, streets, grids, kind, departments=None) -> Principal:
        if role not in self.policy.roles:
            raise Unauthorized(f"the token names role {role[:40]!r}, which this server does not define")
        return Principal(subject, role, streets, grids, kind, self.policy.role(role), departments)


def _basic_password(credential: str) -> str:
    """The token sent as the password of HTTP Basic, the user name ignored: QGIS 3.22 can attach no
    other header to its OGC API and vector-tile requests (its Basic authentication configuration;
    `onemap qgis-project --token` writes one). The token is verified exactly as a Bearer one."""
    try:
        user_password = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("`Authorization: Basic` must be base64 of USER:TOKEN (the token as the password)") from None
    _, colon, password = user_password.partition(":")
    if not colon or not password:
        raise Unauthorized("`Authorization: Basic` carries the token as the password (USER:TOKEN); the password is empty")
    return password


def _oversized(scope) -> tuple[int, str] | None:
    total = 0
    for name, value in scope["headers"]:
        size = len(name) + len(value)
        if size > MAX_HEADER_BYTES:
            return 431, f"header {name[:40].decode('latin-1')!r} is over {MAX_HEADER_BYTES} bytes"
        total += size
    if total > MAX_HEADERS_BYTES:
        return 431, f"request headers total over {MAX_HEADERS_BYTES} bytes"
    query = scope.get("query_string", b"")
    if len(query) > MAX_QUERY_BYTES:
        return 414, f"the query string is over {MAX_QUERY_BYTES} bytes; send large filters as cql2-json in fewer bytes"
    # NUL is in no valid parameter or path, and PostgreSQL refuses it in text: name it here, once
    if b"%00" in query or b"\x00" in query or "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b""):
        return 400, "the request contains a NUL character (%00), which no parameter or path may hold"
    return None


async def _reply(send, status: int, detail: str, headers: dict | None = None) -> None:
    code = {401: "Unauthorized", 414: "URITooLong", 431: "RequestHeaderFieldsTooLarge"}.get(status)
    body = json.dumps(problems.body(status, detail, code)).encode()
    raw = [(b"content-type", problems.MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
