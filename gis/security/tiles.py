"""What of a tileset a caller may have: the hooks tiles/ calls (engine, plan, cache keys, metadata).

A feature layer is in a caller's tiles when they may read its features (masked or full); a
heatmap layer (hexagons of an indicator's layer) when they may see that layer's aggregates. A
tileset left with no layer does not exist for them: 404, as for an unknown one.
"""

from __future__ import annotations

import dataclasses

from gis.catalog import Attribute, Layer
from gis.security import audit
from gis.security.principal import Principal, current
from gis.security.roles import is_sensitive
from tiles.matrix import GRIDS


def visible_tileset(tileset, principal: Principal):
    """The tileset as this principal's role may have it, or None; the same object every time
    (cache keys and hot paths compare it), worked out once per role and tileset."""
    return principal.rights.kept("tileset", tileset, lambda: _visible(tileset, principal))


def _visible(tileset, principal: Principal):
    heat = tuple(getattr(tileset, "heat", ()))
    heat_ids = {h.id: h for h in heat}
    own = next((layer for layer in tileset.layers if layer.id == tileset.id and layer.id not in heat_ids), None)
    if own is not None and not principal.may_read_features(own.id):
        return None  # a collection's tiles exist for whoever may read the collection, not its hexagons
    keep = []
    for layer in tileset.layers:
        if layer.id in heat_ids:
            source = heat_ids[layer.id].source
            indicator = getattr(heat_ids[layer.id], "indicator", None)
            indicator_id = getattr(indicator, "id", indicator) if indicator is not None else None
            allowed = principal.may_see_layer(source) and (
                indicator_id is None or principal.may_use_indicator(str(indicator_id), source)
            )
        else:
            allowed = principal.may_read_features(layer.id)
        if allowed:
            keep.append(layer)
    if len(keep) == len(tileset.layers):
        return tileset
    if not keep and not tileset.is_dataset:
        return None
    changes = {"layers": tuple(keep)}
    if heat:
        kept = {layer.id for layer in keep}
        changes["heat"] = tuple(h for h in heat if h.id in kept)
    return dataclasses.replace(tileset, **changes)


def view_filter_key(principal: Principal, filter_key: str) -> str:
    """The cache key's filter slot: the caller's view first, so views never share a tile."""
    view = principal.view_key
    return filter_key if not view else f"{view}|{filter_key}"


def visible_attributes(layer: Layer) -> list[Attribute]:
    """The attributes the current caller's tiles carry of a layer (masked ones included)."""
    return [a for a, _ in current().attributes(layer)]


def audit_tile(service, collection: str | None, tms: str, z: int, x: int, y: int, entry) -> None:
    """One audit entry per tile sent that carries a sensitive layer at its level (cheap: a queue put).
    The tile's address comes from the caller, which has parsed it already."""
    if not entry.data:
        return
    try:
        tileset = service.engine.tileset(collection or "onemap")
    except KeyError:
        return
    grid = GRIDS.get(tms)
    if grid is None:
        return
    web_zoom = grid.web_zoom(z)
    # asked for every tile sent, warm ones included: worked out once per role, tileset and level
    catalog = service.store.catalog
    sensitive = current().rights.kept(("audited", web_zoom), tileset, lambda: [
        layer.id for layer in tileset.layers
        if layer.id in catalog and is_sensitive(layer) and layer.zoom.min <= web_zoom <= layer.zoom.max
    ])
    if sensitive:
        bounds = grid.lonlat_bounds(z, x, y, 0)
        audit.record(service.store, "tiles", ",".join(sensitive), bbox=[round(v, 7) for v in bounds],
                     detail={"tile": f"{tms}/{z}/{y}/{x}", "tileset": collection or "onemap"})
