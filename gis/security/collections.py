"""One pygeoapi API per role: a layer a role may not read is absent from everything it is served.

pygeoapi derives the landing page, /collections (JSON and HTML), /openapi and the queryables
from its configuration, so filtering one response would leave the others to leak. Instead the
app keeps one configuration per role with only the collections that role may read (masked or
full), built on a role's first request and reused. Restrictions to streets or grids change rows,
not the list, so the role is the whole key; the providers read the principal per request.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from contextvars import ContextVar

import pygeoapi.l10n
from pygeoapi.api import API
from pygeoapi.openapi import get_oas

from gis.security.principal import Principal, current


# The API a pygeoapi call runs with (its id), set by gis.ogc.routes for the call's context.
API_IN_USE: ContextVar[int | None] = ContextVar("onemap_pygeoapi_api", default=None)


class _ConfigCachePerApi(dict):
    """pygeoapi caches the translated configuration its HTML templates read by locale alone,
    process-wide: with one API per role the first role's collections would show in every role's
    pages (or a page would fail on a collection missing from them). Keyed by API here instead."""

    def get(self, locale, default=None):
        return super().get((API_IN_USE.get(), locale), default)

    def __setitem__(self, locale, value) -> None:
        super().__setitem__((API_IN_USE.get(), locale), value)


def _install_config_cache() -> None:
    if not isinstance(pygeoapi.l10n._cfg_cache, _ConfigCachePerApi):
        pygeoapi.l10n._cfg_cache = _ConfigCachePerApi()


class RoleApis:
    def __init__(self, config: dict, indicators=None, document_for: Callable[[dict, Principal], dict] | None = None):
        _install_config_cache()
        self.config = config
        self.indicators = indicators  # aggregate collections name an indicator, not a layer
        # the role's /openapi from pygeoapi's: every other route the app serves for it (gis.openapi)
        self.document_for = document_for
        self._apis: dict[str, API] = {}
        self._lock = threading.Lock()

    def __call__(self) -> API:
        return self.for_principal(current())

    def for_principal(self, principal: Principal) -> API:
        api = self._apis.get(principal.role)
        if api is not None:
            return api
        with self._lock:
            api = self._apis.get(principal.role)
            if api is None:
                config = self.config_for(principal)
                document = get_oas(config, fail_on_invalid_collection=False)
                if self.document_for is not None:
                    document = self.document_for(document, principal)
                api = self._apis[principal.role] = API(config, document)
        return api

    def config_for(self, principal: Principal) -> dict:
        config = copy.deepcopy({k: v for k, v in self.config.items() if k != "resources"})
        config["resources"] = {
            name: copy.deepcopy(resource)
            for name, resource in self.config.get("resources", {}).items()
            if self.allows(principal, name, resource)
        }
        return config

    def allows(self, principal: Principal, name: str, resource: dict) -> bool:
        providers = resource.get("providers") or [{}]
        indicator_id = providers[0].get("indicator")
        if indicator_id is None:
            return principal.may_read_features(name)
        # an aggregate collection (gis.aggregates): the indicator's layer's aggregates suffice
        indicator = self.indicators.get(indicator_id) if self.indicators is not None else None
        return indicator is not None and principal.may_use_indicator(indicator.id, indicator.layer)
