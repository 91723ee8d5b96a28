"""Exact filtered counts (`numberMatched`), reused for a while per (layer, data version, filter).

One cache per registered store (gis.features.registry): it lives and dies with the app's store,
and a new data version makes old entries unreachable, so a write is never hidden by a stale count.
"""

from __future__ import annotations

import threading
import time


class CountCache:
    """Exact filtered counts, reused for a while per (layer, data version, filter)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[tuple, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> int | None:
        with self._lock:
            hit = self._entries.get(key)
        if hit and time.monotonic() - hit[0] < self.seconds:
            return hit[1]
        return None

    def put(self, key: tuple, value: int) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)
