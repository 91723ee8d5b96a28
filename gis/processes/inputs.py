"""The `aggregate` process's inputs, checked and turned into one indicator question.

A client's filter is checked as untrusted (queryable attributes only) and then joined to the
indicator's own filter; a layer without an indicator becomes an ad-hoc indicator whose
suppression follows the registry: a layer that any indicator counts people in is suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely

from gis.app.problems import Problem
from gis.catalog import AttrType, Catalog
from gis.features import cql
from gis.features.cql import FilterError
from gis.hexagons import FINEST_RES
from gis.stats.aggregate import AREAS
from gis.stats.api import _polygon
from gis.stats.indicators import Indicator, Indicators

KNOWN = {"indicator", "layer", "measure", "filter", "by", "res", "polygon"}


@dataclass(frozen=True)
class Question:
    indicator: Indicator
    area: str
    res: int | None
    polygon: shapely.Geometry | None


def parse_inputs(inputs: dict, catalog: Catalog, indicators: Indicators) -> Question:
    unknown = set(inputs) - KNOWN
    if unknown:
        raise Problem(400, f"unknown inputs {sorted(unknown)}; the process takes {', '.join(sorted(KNOWN))}")
    values = {name: _plain(value) for name, value in inputs.items()}
    indicator = _indicator(values, catalog, indicators)
    text = values.get("filter")
    if text is not None:
        if not isinstance(text, str):
            raise Problem(400, "filter must be CQL2 text, e.g. \"status = 'offline'\"")
        try:
            cql.validate(cql.parse_filter(text), catalog[indicator.layer])
        except FilterError as err:
            raise Problem(400, f"filter: {err}") from None
        joined = text if indicator.filter is None else f"({indicator.filter}) AND ({text})"
        indicator = indicator.model_copy(update={"filter": joined})
    area = values.get("by", "city")
    if area not in AREAS:
        raise Problem(400, f"by must be one of {', '.join(AREAS)}, got {str(area)[:40]!r}")
    res = values.get("res")
    if res is not None and (not isinstance(res, int) or isinstance(res, bool) or not 0 <= res <= FINEST_RES):
        raise Problem(400, f"res must be an integer H3 resolution between 0 and {FINEST_RES}, got {str(res)[:20]!r}")
    if area == "h3" and res is None:
        raise Problem(400, "by=h3 needs res, an H3 resolution")
    polygon = _polygon(values["polygon"]) if values.get("polygon") is not None else None
    return Question(indicator, area, res, polygon)


def _plain(value):
    # a qualified input value: {"value": ..., "mediaType": ...}
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "mediaType", "encoding", "schema"}:
        return value["value"]
    return value


def _indicator(values: dict, catalog: Catalog, indicators: Indicators) -> Indicator:
    indicator_id, layer_id = values.get("indicator"), values.get("layer")
    if (indicator_id is None) == (layer_id is None):
        raise Problem(400, "give either indicator (see /stats/indicators) or layer (see /collections), not both")
    if indicator_id is not None:
        if "measure" in values:
            raise Problem(400, "measure goes with layer; an indicator has its own")
        found = indicators.get(str(indicator_id))
        if found is None:
            raise Problem(404, f"no indicator {str(indicator_id)[:60]!r}; see /stats/indicators for the list", "NotFound")
        return found
    if not isinstance(layer_id, str) or layer_id not in catalog:
        raise Problem(404, f"no layer {str(layer_id)[:60]!r}; see /collections for the list", "NotFound")
    layer = catalog[layer_id]
    measure = values.get("measure", "count")
    if measure != "count":
        if not isinstance(measure, str) or not measure.startswith("sum:"):
            raise Problem(400, f"measure must be count or sum:<attribute>, got {str(measure)[:40]!r}")
        name = measure[4:]
        numeric = {a.name for a in layer.public_attributes if a.type in (AttrType.integer, AttrType.number)}
        if name not in numeric:
            raise Problem(400, f"{layer_id} has no numeric attribute {name[:40]!r} to sum; it has {', '.join(sorted(numeric)) or 'none'}")
    people = any(i.suppress for i in indicators if i.layer == layer_id)
    return Indicator(
        id=f"{layer_id}_{'count' if measure == 'count' else measure[4:]}",
        name=f"{layer.title}: {measure}", name_zh=layer.title_zh,
        definition=f"{measure} of {layer.title} ({layer_id})", unit=layer_id if measure == "count" else (layer.attr(measure[4:]).unit or ""),
        layer=layer_id, measure=measure, owner="request", suppress=people,
    )
