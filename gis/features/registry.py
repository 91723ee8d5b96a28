"""Stores the pygeoapi providers read from, by key.

pygeoapi builds a provider per request from its configuration, which can only carry strings:
the app registers its store here and puts the key in the provider definition's `data`.
Several apps (tests, workers) may each register their own store in one process.
"""

from __future__ import annotations

import threading
import uuid

from gis.features.counts import CountCache
from gis.storage.store import Store

_stores: dict[str, Store] = {}
_counts: dict[str, CountCache] = {}
_lock = threading.Lock()


def register(store: Store) -> str:
    key = f"onemap-store-{uuid.uuid4().hex}"
    with _lock:
        _stores[key] = store
        _counts[key] = CountCache(store.settings.server.count_cache_seconds)
    return key


def lookup(key: str) -> Store:
    try:
        return _stores[key]
    except KeyError:
        raise LookupError(f"no OneMap store is registered as {key!r}; build the app with create_app()") from None


def counts(key: str) -> CountCache:
    """The filtered-count cache of the store registered as `key`."""
    lookup(key)
    return _counts[key]


def unregister(key: str) -> None:
    with _lock:
        _stores.pop(key, None)
        _counts.pop(key, None)
