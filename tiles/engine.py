"""The tile engine: from (tileset, grid, z, x, y, filter) to MVT bytes, on either backend.

A tileset is either one published layer (a collection's tiles) or the dataset tileset `DATASET`,
which carries every published layer within its zoom range. The engine picks the renderer by
backend (PostGIS: ST_AsMVT in the database; GeoPackage: Python), applies the size budget the same
way for both, and reports what it did. Caching, single-flight and HTTP live above it (tiles.cache,
tiles.api); this module is synchronous and runs in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement

from gis.catalog import Layer
from gis.storage.store import Store
from tiles import render_postgis, render_python
from tiles.generalise import BUDGET_MAX_STEPS, TILE_BUDGET_BYTES, detail
from tiles.matrix import Grid
from tiles.plan import LayerPlan, Rendered, TilePlan, moduli

DATASET = "onemap"


class UnknownTileset(KeyError):
    pass


class Cancelled(RuntimeError):
    """Every client waiting for the tile went away; its query was stopped."""


class RenderJob:
    """Lets another thread stop a render: cancels the running PostGIS query or SQLite statement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dbapi = None
        self.cancelled = False

    def attach(self, dbapi_connection) -> None:
        with self._lock:
            self._dbapi = dbapi_connection
            if self.cancelled:
                raise Cancelled()

    def detach(self) -> None:
        with self._lock:
            self._dbapi = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            conn = self._dbapi
        if conn is None:
            return
        stop = getattr(conn, "cancel_safe", None) or getattr(conn, "cancel", None) or getattr(conn, "interrupt", None)
        try:
            stop()
        except Exception:  # the statement may have finished meanwhile: nothing left to stop
            pass


@dataclass(frozen=True)
class Tileset:
    id: str
    layers: tuple[Layer, ...]

    @property
    def is_dataset(self) -> bool:
        return self.id == DATASET


class TileEngine:
    def __init__(self, store: Store, budget: int = TILE_BUDGET_BYTES):
        self.store = store
        self.budget = budget
        published = tuple(layer for layer in store.catalog.published)
        self.tilesets: dict[str, Tileset] = {DATASET: Tileset(DATASET, published)}
        for layer in published:
            self.tilesets[layer.id] = Tileset(layer.id, (layer,))

    def tileset(self, tileset_id: str) -> Tileset:
        try:
            return self.tilesets[tileset_id]
        except KeyError:
            raise UnknownTileset(tileset_id) from None

    def tilesets_with(self, layer_id: str) -> list[str]:
        return [t.id for t in self.tilesets.values() if any(layer.id == layer_id for layer in t.layers)]

    def plan(
        self,
        tileset_id: str,
        grid: Grid,
        z: int,
        x: int,
        y: int,
        where: Mapping[str, ColumnElement] | None = None,
    ) -> TilePlan:
        """The layers the tile carries at this level, each with its detail rules and filter."""
        web_zoom = grid.web_zoom(z)
        layers = []
        for layer in self.tileset(tileset_id).layers:
            rules = detail(layer, web_zoom)
            if rules is not None:
                clause = (where or {}).get(layer.id)
                layers.append(LayerPlan(layer, self.store.tables[layer.id], rules, clause))
        return TilePlan(grid, z, x, y, tuple(layers))

    def render(self, plan: TilePlan, job: RenderJob | None = None) -> Rendered:
        """Render within the budget: retry with the deterministic id thinning until the tile fits."""
        if not plan.layers:
            return Rendered(b"", {})
        with self.store.engine.connect() as conn:
            if job is not None:
                job.attach(conn.connection.driver_connection)
            try:
                result = self._render_once(conn, plan, {})
                first_counts = result.counts
                step = 0
                while len(result.data) > self.budget and step < BUDGET_MAX_STEPS:
                    step += 1
                    result = self._render_once(conn, plan, moduli(first_counts, step))
                    result.step = step
                return result
            except Exception:
                if job is not None and job.cancelled:
                    raise Cancelled() from None
                raise
            finally:
                if job is not None:
                    job.detach()

    def _render_once(self, conn, plan: TilePlan, mod: dict[str, int]) -> Rendered:
        if self.store.postgis:
            return render_postgis.render(conn, self.store.schema, plan, mod)
        return render_python.render(conn, self.store.backend, plan, mod)
