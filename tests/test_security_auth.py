"""Authentication: API keys and OIDC JWTs name the caller; no token is the public; a token that
does not verify is a 401 problem, never a quiet downgrade to the public.
"""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from gis.cli import main
from tests.oracle import read_layer
from tests.security_support import JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, api_key, client, jwt_token, security_server


@pytest.fixture(scope="module")
def server(store):
    with security_server(store) as base:
        yield base


def collections(http) -> set[str]:
    response = http.get("/collections")
    assert response.status_code == 200, response.text[:300]
    return {c["id"] for c in response.json()["collections"]}


def assert_401(response, *words):
    assert response.status_code == 401, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401
    for word in words:
        assert word in body["detail"], body["detail"]


def test_no_token_is_the_public(server):
    with client(server) as http:
        assert "cameras" not in collections(http)


def test_an_api_key_names_its_role(server, store):
    with client(server, api_key(store, "staff")) as http:
        assert "cameras" in collections(http)


def test_a_token_may_come_as_the_basic_password(server, store):
    """QGIS 3.22 sends only Basic credentials (its authentication configurations): the key is the password."""
    import base64

    key = api_key(store, "staff")
    basic = base64.b64encode(f"planner:{key}".encode()).decode()
    with client(server) as http:
        response = http.get("/collections", headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 200 and "cameras" in {c["id"] for c in response.json()["collections"]}
        wrong = base64.b64encode(f"planner:{key[:-2]}xx".encode()).decode()
        assert_401(http.get("/collections", headers={"Authorization": f"Basic {wrong}"}))


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("Basic YWRtaW46YWRtaW4=", ["invalid token"]),  # admin:admin: the password is no token
        ("Basic bm8tY29sb24=", ["USER:TOKEN"]),  # "no-colon"
        ("Basic !!!", ["base64"]),
        ("Bearer om_nosuchkey_abcdef", ["unknown"]),
        ("Bearer om_", ["malformed"]),
        ("Bearer not-a-jwt", ["invalid token"]),
        ("Token abc", ["Bearer"]),
    ],
)
def test_bad_tokens_are_401_problems(server, header, words):
    with client(server) as http:
        assert_401(http.get("/collections", headers={"Authorization": header}), *words)
        assert_401(http.get("/tiles/WebMercatorQuad/10/400/850", headers={"Authorization": header}))


def test_revoked_and_expired_keys_are_refused(server, store):
    token = api_key(store, "admin", "leaver")
    key_id = token.split("_")[1]
    env = {"ONEMAP_DATABASE_URL": store.settings.database.database_url, "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name}
    listed = CliRunner().invoke(main, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and key_id in listed.output and token not in listed.output
    revoked = CliRunner().invoke(main, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    with client(server, token) as http:
        assert_401(http.get("/collections"), "revoked")
    expired = api_key(store, "admin", "temp", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    with client(server, expired) as http:
        assert_401(http.get("/collections"), "expired")


def test_onemap_keys_create_prints_a_working_key(server, store):
    env = {"ONEMAP_DATABASE_URL": store.settings.database.database_url, "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name}
    result = CliRunner().invoke(main, ["keys", "create", "--subject", "ops", "--role", "admin", "--days", "1"], env=env)
    assert result.exit_code == 0, result.output
    token = [line for line in result.output.splitlines() if line.startswith("om_")][-1]
    with client(server, token) as http:
        assert "population" in collections(http)
    bad = CliRunner().invoke(main, ["keys", "create", "--subject", "x", "--role", "emperor"], env=env)
    assert bad.exit_code != 0 and "no role" in bad.output and "Traceback" not in bad.output


def test_a_valid_jwt_names_role_and_streets(server, store):
    with client(server, jwt_token("admin")) as http:
        assert "population" in collections(http)
    street = read_layer(store, "cameras")[0].props["street"]
    expected = sum(1 for r in read_layer(store, "cameras") if r.props["street"] == street)
    with client(server, jwt_token("staff", onemap_streets=[street])) as http:
        assert http.get("/collections/cameras/items", params={"limit": 1}).json()["numberMatched"] == expected


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (lambda: jwt_token("admin", exp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)), ["expired"]),
        (lambda: jwt_token("admin", aud="someone-else"), ["audience"]),
        (lambda: jwt_token("admin", iss="https://evil.example"), ["issued"]),
        (lambda: jwt_token("admin", key="another-secret-another-secret-another!!"), ["invalid token"]),
        (lambda: jwt_token("emperor"), ["emperor"]),
        (lambda: jwt_token("admin", onemap_role=None), ["onemap_role"]),
        (lambda: "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwib25lbWFwX3JvbGUiOiJhZG1pbiJ9.", ["invalid token"]),
    ],
    ids=["expired", "audience", "issuer", "forged", "unknown-role", "no-role", "alg-none"],
)
def test_jwts_that_do_not_verify_are_refused(server, token, words):
    with client(server, token()) as http:
        assert_401(http.get("/collections"), *words)


def test_only_the_wall_may_send_its_token_in_the_url(server, store):
    wall = api_key(store, "wall", "wall-1")
    with client(server) as http:
        response = http.get("/collections", params={"token": wall})
        assert response.status_code == 200 and "cameras" in {c["id"] for c in response.json()["collections"]}
        assert wall not in response.text  # stripped before routing: never echoed in links
        tile = http.get("/tiles/WebMercatorQuad/10/400/850", params={"token": wall})
        assert tile.status_code in (200, 204)
        assert_401(http.get("/collections", params={"token": api_key(store, "staff")}), "URL")
        assert_401(http.get("/collections", params={"token": wall}, headers={"Authorization": f"Bearer {wall}"}), "once")


@pytest.fixture(scope="module")
def jwks(tmp_path_factory):
    """An identity provider's JWKS document on a local HTTP server, and its private key."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/jwks.json", key
    httpd.shutdown()


def test_jwts_signed_by_the_identity_providers_jwks_keys(store, jwks):
    import jwt

    url, key = jwks
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "u1", "exp": now + dt.timedelta(minutes=5), "onemap_role": "admin"}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k9"})
    hs_confusion = jwt.encode(claims, JWT_SECRET, algorithm="HS256", headers={"kid": "k1"})
    with security_server(store, oidc_key=None, oidc_jwks_url=url, oidc_algorithms=["RS256"]) as base:
        with client(base, good) as http:
            assert "population" in collections(http)
        with client(base, unknown_kid) as http:
            assert_401(http.get("/collections"), "signing key")
        with client(base, hs_confusion) as http:
            assert_401(http.get("/collections"))
