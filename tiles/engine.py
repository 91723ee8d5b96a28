"""The tile engine: from (tileset, grid, z, x, y, filter) to MVT bytes, on either backend.

A tileset is either one published layer (a collection's tiles) or the dataset tileset `DATASET`,
which carries every published layer within its zoom range. The engine picks the renderer by
backend (PostGIS: ST_AsMVT in the database; GeoPackage: Python), applies the size budget the same
way for both, and reports what it did. Caching, single-flight and HTTP live above it (tiles.cache,
tiles.api). `render` is synchronous and runs in a worker thread; `render_on_loop` is its coroutine
twin for the tiles that need nothing but a PostGIS statement (tiles.render_async).

On PostGIS tiles take their own connections (`tile_engine`): autocommit (no BEGIN/ROLLBACK around
the one statement), no pre-ping (a dead connection costs one retry on a fresh one instead of a
`SELECT 1` per tile), no parallel workers (row order, hence bytes and ETag, do not depend on them).
psycopg prepares a statement it has run five times on a connection, so a tile is one round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from gis.catalog import Layer
from gis.security.principal import current
from gis.security.tiles import visible_tileset
from gis.storage.engine import libpq_options, session_settings
from gis.storage.store import Store
from tiles import render_postgis, render_python
from tiles.generalise import TILE_BUDGET_BYTES, detail
from tiles.heatmap.definition import Heatmap, Heatmaps
from tiles.heatmap.cells import SQL_MARGIN_EDGES, grow
from tiles.heatmap.render import HeatPlan, HeatTiles
from tiles.heatmap.shared import SharedCells
from tiles.matrix import Grid
from tiles.plan import Budget, LayerPlan, Rendered, TilePlan
from tiles.render_async import AsyncTileConnections

DATASET = "onemap"


def tile_settings(store: Store) -> dict[str, str]:
    """The session settings of every tile connection (both paths): the store's, and no parallel
    workers or JIT for statements this short."""
    return {**session_settings(store.settings.database), "max_parallel_workers_per_gather": "0", "jit": "off"}


def tile_engine(store: Store) -> Engine:
    """The lean connections tiles render on (PostGIS); the store's own engine elsewhere."""
    if not store.postgis:
        return store.engine
    db = store.settings.database
    engine = create_engine(
        store.engine.url,
        # what still renders in threads: hexagon tiles counted in SQL (filtered) and waits on another
        # process's render; feature tiles take the loop's connections (tiles.render_async)
        pool_size=db.pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_timeout=10,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": libpq_options(tile_settings(store)), "connect_timeout": 5},
    )
    store.key.attach(engine, postgis=True)  # tiles decrypt the sealed columns they may show
    return engine


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
    layers: tuple[Layer, ...]  # what the tiles carry; a heatmap's layer stands for its hexagons
    heat: tuple[Heatmap, ...] = ()

    @property
    def is_dataset(self) -> bool:
        return self.id == DATASET

    def source_of(self, layer_id: str) -> str:
        """The stored layer a tile layer is drawn from (a heatmap's indicator layer)."""
        return next((h.source for h in self.heat if h.id == layer_id), layer_id)

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(self.source_of(layer.id) for layer in self.layers))


class TileEngine:
    def __init__(
        self,
        store: Store,
        budget: int = TILE_BUDGET_BYTES,
        heatmaps: Heatmaps | None = None,
        k: int = 10,
        shared_cells: Path | None = None,
    ):
        self.store = store
        self.budget = budget
        # city-wide hexagon cells built once per host when the workers share a directory
        shared = SharedCells(shared_cells, f"{store.engine.url.render_as_string()}#{store.schema}") if shared_cells else None
        self.heat_tiles = HeatTiles(store, k, shared=shared)
        self.db = tile_engine(store)
        # PostGIS tiles made of features only are sent from the event loop (tiles.render_async)
        self.loop_db = (
            AsyncTileConnections(
                store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                tile_settings(store),
                store.key.postgres_session,
                # twice the pool size: the 16 bench clients spread unevenly over 2 workers, and with 8
                # the busier worker's requests queued for a connection (b9100a0)
                2 * store.settings.database.pool_size,
            )
            if store.postgis
            else None
        )
        self.layer_versions: dict[str, int] = {}  # set by the tile service: city-wide cells are per version
        published = tuple(layer for layer in store.catalog.published)
        under = heatmaps.under_layer if heatmaps else {}
        # below a layer's first zoom of individual features, its hexagons, in its tiles and the dataset's
        dataset_heat = tuple(under[layer.id] for layer in published if layer.id in under)
        self.tilesets: dict[str, Tileset] = {
            DATASET: Tileset(DATASET, published + tuple(h.layer for h in dataset_heat), dataset_heat)
        }
        for layer in published:
            heat = (under[layer.id],) if layer.id in under else ()
            self.tilesets[layer.id] = Tileset(layer.id, (layer, *(h.layer for h in heat)), heat)
        for heatmap in heatmaps or ():
            self.tilesets[heatmap.id] = Tileset(heatmap.id, (heatmap.layer,), (heatmap,))

    def tileset(self, tileset_id: str) -> Tileset:
        """The tileset as the current caller may have it (gis.security): layers they may not read
        are absent from it, and a tileset left with nothing is unknown to them."""
        try:
            tileset = self.tilesets[tileset_id]
        except KeyError:
            raise UnknownTileset(tileset_id) from None
        visible = visible_tileset(tileset, current())
        if visible is None:
            raise UnknownTileset(tileset_id)
        return visible

    def tilesets_with(self, layer_id: str) -> list[str]:
        return [t.id for t in self.tilesets.values() if layer_id in t.sources]

    def reach(self, layer_id: str, tileset_id: str, grid: Grid, z: int, bbox: tuple[float, float, float, float]):
        """Where a write to `layer_id` inside `bbox` can change this tileset's tiles at level z: further
        than the bbox where its hexagons show, since a hexagon carries its whole cell wherever drawn."""
        tileset = self.tilesets.get(tileset_id)
        web_zoom = grid.web_zoom(z)
        heat = [h for h in (tileset.heat if tileset else ()) if h.source == layer_id]
        shown = [h for h in heat if h.layer.zoom.min <= web_zoom <= h.layer.zoom.max]
        if not shown:
            return bbox
        return grow(bbox, min(h.resolution(web_zoom) for h in shown), SQL_MARGIN_EDGES)

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
        tileset = self.tileset(tileset_id)
        heat = {h.id: h for h in tileset.heat}
        layers, heat_plans = [], []
        for layer in tileset.layers:
            clause = (where or {}).get(tileset.source_of(layer.id))
            if layer.id in heat:
                # hexagons of people are never filtered: two filtered views would isolate a few
                protected = clause is not None and heat[layer.id].protected
                if layer.zoom.min <= web_zoom <= layer.zoom.max and not protected:
                    h = heat[layer.id]
                    version = self.layer_versions.get(h.source, 0)
                    # suppression is lifted only for roles that read the layer's features (gis.security)
                    individual = current().individual_access(h.source)
                    heat_plans.append(HeatPlan(h, h.resolution(web_zoom), version, clause, individual))
                continue
            rules = detail(layer, web_zoom)
            if rules is not None:
                layers.append(LayerPlan(layer, self.store.tables[layer.id], rules, clause))
        return TilePlan(grid, z, x, y, tuple(layers), tuple(heat_plans))

    def close(self) -> None:
        self.heat_tiles.close()
        if self.loop_db is not None:
            self.loop_db.close()
        if self.db is not self.store.engine:
            self.db.dispose()

    def render(self, plan: TilePlan, job: RenderJob | None = None) -> Rendered:
        """Render within the budget: retry with the deterministic id thinning until the tile fits."""
        if not plan.layers and not plan.heat:
            return Rendered(b"", {})
        if not plan.layers and self.heat_tiles.from_city_cells(plan.heat):
            return self.heat_tiles.render(None, plan, list(plan.heat))  # no connection taken per tile
        try:
            return self._render(plan, job)
        except DBAPIError as err:
            # without pre-ping a pooled connection may have died (server restart): SQLAlchemy has
            # discarded it and the pool with it; one more try runs on a fresh connection
            if not err.connection_invalidated or (job is not None and job.cancelled):
                raise
            return self._render(plan, job)

    def _render(self, plan: TilePlan, job: RenderJob | None) -> Rendered:
        with self.db.connect() as conn:
            if job is not None:
                job.attach(conn.connection.driver_connection)
            try:
                # hexagons are few by construction (the resolution follows the zoom): no budget
                heat = self.heat_tiles.render(conn, plan, list(plan.heat)) if plan.heat else Rendered(b"", {})
                if not plan.layers:
                    return heat
                # the budget is for the whole tile: the hexagons' bytes count against it too
                budget = Budget(self.budget - len(heat.data))
                while budget.take(self._render_once(conn, plan, budget.moduli)):
                    pass
                result = budget.result
                # MVT layers are independent messages: concatenating tiles merges their layers
                return Rendered(heat.data + result.data, {**heat.counts, **result.counts}, result.step)
            except Exception:
                if job is not None and job.cancelled:
                    raise Cancelled() from None
                raise
            finally:
                if job is not None:
                    job.detach()

    def on_loop(self, plan: TilePlan) -> bool:
        """Whether `render_on_loop` takes this tile: PostGIS features only, no hexagons to draw, no
        where-clause (asyncpg would refuse a filter value PostgreSQL casts: tiles.render_async)."""
        return (
            self.loop_db is not None and bool(plan.layers) and not plan.heat and all(lp.where is None for lp in plan.layers)
        )

    async def render_on_loop(self, plan: TilePlan) -> Rendered:
        """`render` for a tile `on_loop` accepts, its statements awaited on the event loop."""
        assert self.loop_db is not None
        budget = Budget(self.budget)
        while True:
            sql, params = render_postgis.statement(self.db.dialect, self.store.schema, plan, budget.moduli)
            row = await self.loop_db.fetch_one(sql, params)
            if not budget.take(render_postgis.rendered(plan, row)):
                assert budget.result is not None
                return budget.result

    def _render_once(self, conn, plan: TilePlan, mod: dict[str, int]) -> Rendered:
        if self.store.postgis:
            return render_postgis.render(conn, self.store.schema, plan, mod)
        return render_python.render(conn, self.store.backend, plan, mod)
