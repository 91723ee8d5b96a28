"""/stats answers kept per data version: the wall's KPIs ask the same whole-city questions every
few seconds, and the answer only changes when the layer does.

Exact by construction: every writer, OneMap's or another system's, bumps the layer's version in
`onemap_layers` in its own transaction (gis.edit.triggers), and an answer is kept only when the
versions it depends on read the same before and after it was computed, so an answer computed
across a write is used once and never kept. The key holds everything the answer depends on:
the question, k, whether suppression is lifted, and the caller's streets and grids.
Polygon questions are not kept (each polygon is its own question), nor answers of more than
MAX_GROUPS groups (fine H3 cells of a whole city).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from gis.stats.aggregate import Answer
from gis.stats.indicators import Indicator
from gis.storage.store import Store

MAX_ENTRIES = 256
MAX_GROUPS = 20_000


class Answers:
    def __init__(self, store: Store):
        self.store = store
        self._kept: OrderedDict[tuple, tuple[tuple[int, ...], Answer]] = OrderedDict()
        self._lock = threading.Lock()

    def _versions(self, layers: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.store.layer_meta(layer).version for layer in layers)

    def get(self, indicator: Indicator, area: str, key: tuple, compute: Callable[[], Answer]) -> Answer:
        # by district, the answer also depends on which district each street belongs to
        layers = (indicator.layer, "streets") if area == "district" else (indicator.layer,)
        before = self._versions(layers)
        with self._lock:
            found = self._kept.get(key)
            if found is not None and found[0] == before:
                self._kept.move_to_end(key)
                return found[1]
        answer = compute()
        if len(answer.groups) <= MAX_GROUPS and self._versions(layers) == before:
            with self._lock:
                self._kept[key] = (before, answer)
                self._kept.move_to_end(key)
                while len(self._kept) > MAX_ENTRIES:
                    self._kept.popitem(last=False)
        return answer
