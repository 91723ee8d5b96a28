"""The security of one app: its policy, token verifiers and tables, built by create_app."""

from __future__ import annotations

from gis.security.middleware import AuthMiddleware
from gis.security.principal import Principal, anonymous
from gis.security.roles import Policy
from gis.security.tables import tables_for
from gis.security.tokens import JwtVerifier
from gis.settings import Settings
from gis.storage.store import Store


class Security:
    def __init__(self, settings: Settings, store: Store):
        self.store = store
        self.policy = Policy.load(settings.server.roles_path, store.catalog)
        self.jwts = JwtVerifier(settings.server)
        self.tables = tables_for(store)
        self.public: Principal = anonymous(self.policy)

    def wrap(self, app):
        """The ASGI app behind authentication: every request then has a principal."""
        return AuthMiddleware(app, self.store, self.policy, self.jwts)
