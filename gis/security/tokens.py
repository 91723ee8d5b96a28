"""JWTs from the city's OIDC provider: signature, issuer, audience, expiry — all checked.

The key comes from a JWKS URL (fetched and cached by PyJWT's client) or from settings (a PEM
public key, or a shared secret for HS256). Claims name the role and, optionally, the streets or
grids its holder is limited to (`onemap_role`, `onemap_streets`, `onemap_grids` by default), and
the departments whose cases it handles (`onemap_departments`, gis.cases).
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from gis.settings import ServerSettings


class TokenError(ValueError):
    """Why a JWT is refused, in words a client can act on."""


@dataclass(frozen=True)
class Claims:
    subject: str
    role: str
    streets: frozenset[str] | None
    grids: frozenset[str] | None
    departments: frozenset[str] | None = None


class JwtVerifier:
    def __init__(self, server: ServerSettings):
        self.issuer = server.oidc_issuer
        self.audience = server.oidc_audience
        self.algorithms = list(server.oidc_algorithms)
        self.key = server.oidc_key
        self.role_claim = server.oidc_role_claim
        self.jwks = jwt.PyJWKClient(server.oidc_jwks_url, cache_keys=True, timeout=5) if server.oidc_jwks_url else None

    @property
    def configured(self) -> bool:
        return bool(self.issuer and self.audience and (self.key or self.jwks))

    def verify(self, token: str) -> Claims:
        if not self.configured:
            raise TokenError("this server accepts no JWTs (no OIDC issuer configured); use an API key")
        try:
            key = self.jwks.get_signing_key_from_jwt(token).key if self.jwks else self.key
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired; get a new one from the identity provider") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is not meant for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token was not issued by the configured identity provider") from None
        except jwt.PyJWKClientError:
            raise TokenError("the token's signing key is not among the identity provider's keys") from None
        except jwt.PyJWTError as err:
            raise TokenError(f"invalid token: {str(err)[:120]}") from None
        role = claims.get(self.role_claim)
        if not isinstance(role, str):
            raise TokenError(f"the token carries no {self.role_claim!r} claim naming a role")
        return Claims(
            str(claims["sub"]), role, _codes(claims.get("onemap_streets")), _codes(claims.get("onemap_grids")),
            _codes(claims.get("onemap_departments")),
        )


def _codes(value) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError("onemap_streets, onemap_grids and onemap_departments must be lists of codes")
    return frozenset(value)
