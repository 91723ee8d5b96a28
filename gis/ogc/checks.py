"""Request checks run before pygeoapi sees a request: each names exactly what is wrong.

pygeoapi answers some bad input with a vague message ("Bad CQL text") and lets other input
through to the database (NaN in a bbox, offsets past BIGINT). These small functions, one per
parameter family, turn both into 4xx problem details.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import pyproj

from pygeoapi.api import APIRequest
from starlette.requests import Request

from gis.app.problems import Problem
from gis.catalog import Catalog, Layer
from gis.crs import CRS84, STORAGE_CRS_URI, SUPPORTED_CRS, bbox_to_storage, within_area_of_use
from gis.security.principal import current

MAX_OFFSET = 10**12
ITEM_ID = re.compile(r"^[0-9]{1,18}$")


@dataclass(frozen=True)
class Context:
    catalog: Catalog
    published: frozenset[str]
    aggregates: frozenset[str] = frozenset()  # gis.aggregates: hexagons and grids, not layers

    def layer(self, collection_id: str) -> Layer:
        if collection_id in self.aggregates:
            raise Problem(
                400, f"{collection_id} is an aggregate collection: it takes bbox, limit and offset only; "
                "filter with the process aggregate (/processes/aggregate)",
            )
        # a layer the caller may not read is as absent as an unknown one (gis.security)
        if collection_id not in self.published or not current().may_read_features(collection_id):
            raise Problem(404, f"no collection {collection_id[:80]!r}; see /collections for the list", "NotFound")
        return self.catalog[collection_id]


@lru_cache(maxsize=32)
def is_geographic(crs_uri: str) -> bool:
    return pyproj.CRS.from_user_input(crs_uri).is_geographic


def collection(ctx: Context, request: Request, api_request: APIRequest) -> None:
    if request.path_params["collection_id"] in ctx.aggregates:
        return
    ctx.layer(request.path_params["collection_id"])


def item_id(ctx: Context, request: Request, api_request: APIRequest) -> None:
    value = request.path_params["item_id"]
    if request.path_params["collection_id"] in ctx.aggregates:
        return  # H3 cell ids and area codes
    if not ITEM_ID.match(value):
        raise Problem(404, f"no item {value[:40]!r} in {request.path_params['collection_id']}: ids are integers")


def _integer(params, name: str, low: int, high: int) -> None:
    raw = params.get(name)
    if raw is None:
        return
    # ASCII digits only: int() would also take " 5", "1_000" and full-width digits
    if not re.fullmatch(r"-?[0-9]{1,30}", raw):
        raise Problem(400, f"{name} must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low} and {high}, got {value}")


def paging(ctx: Context, request: Request, api_request: APIRequest) -> None:
    params = request.query_params
    # limit above the maximum is throttled by pygeoapi (server.limits.on_exceed), not refused
    _integer(params, "limit", 1, 10**9)
    _integer(params, "offset", 0, MAX_OFFSET)
    _integer(params, "after", 0, 2**62)
    if "after" in params:
        # a keyset cursor (gis.features.cursor): the dispatcher passes it on, pygeoapi never sees it
        request.state.after_id = int(params["after"])
        _drop_params(api_request, "after")


def _drop_params(api_request: APIRequest, *names: str) -> None:
    api_request._args = {k: v for k, v in api_request.params.items() if k not in names}


def bbox(ctx: Context, request: Request, api_request: APIRequest) -> None:
    params = request.query_params
    raw = params.get("bbox")
    crs = params.get("bbox-crs")
    if crs is not None and crs not in SUPPORTED_CRS:
        raise Problem(400, f"bbox-crs {crs[:100]!r} is not supported; use one of {', '.join(SUPPORTED_CRS)}")
    if raw is None:
        return
    parts = raw.split(",")
    try:
        if not raw.isascii():  # float() would read full-width digits
            raise ValueError(raw)
        values = [float(p) for p in parts]
    except ValueError:
        raise Problem(400, f"bbox must be 4 or 6 comma-separated numbers, got {raw[:80]!r}") from None
    if len(values) not in (4, 6):
        raise Problem(400, f"bbox must have 4 or 6 numbers, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise Problem(400, "bbox numbers must be finite (no NaN or infinity)")
    half = len(values) // 2
    lower, upper = values[:half], values[half:]
    if any(lo > hi for lo, hi in zip(lower, upper)):
        raise Problem(400, f"bbox lower corner {lower} exceeds upper corner {upper}")
    if crs is None or is_geographic(crs):
        # CRS84 is lon/lat; EPSG:4326/4490 are lat/lon: either way both axes must be in range
        lon_lat = (lower[0], lower[1], upper[0], upper[1])
        if crs is not None and not crs.endswith("CRS84"):
            lon_lat = (lower[1], lower[0], upper[1], upper[0])
        if not (-180 <= lon_lat[0] <= 180 and -180 <= lon_lat[2] <= 180 and -90 <= lon_lat[1] <= 90 and -90 <= lon_lat[3] <= 90):
            raise Problem(400, f"bbox {values} is outside the range of longitude/latitude for {crs or 'CRS84'}")
    try:
        minx, miny, maxx, maxy = bbox_to_storage(tuple(values), crs or CRS84)
    except Exception:
        raise Problem(400, f"bbox {values} cannot be transformed from {crs or 'CRS84'} to longitude/latitude") from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not within_area_of_use(
        (minx, miny, maxx, maxy), crs or CRS84
    ):
        raise Problem(400, f"bbox {values} lies outside the area of use of {crs}, where its coordinates mean nothing")
    # pygeoapi would transform only the corners; hand it the densified box in the storage CRS
    # (authority order: latitude first), which it passes on untouched
    api_request._args = {
        **api_request.params,
        "bbox": f"{miny!r},{minx!r},{maxy!r},{maxx!r}",
        "bbox-crs": STORAGE_CRS_URI,
    }


def datetime_(ctx: Context, request: Request, api_request: APIRequest) -> None:
    raw = request.query_params.get("datetime")
    if raw is None:
        return
    layer = ctx.layer(request.path_params["collection_id"])
    if not layer.temporal:
        raise Problem(400, f"datetime: {layer.id} has no time property to filter on")
    parts = raw.split("/")
    if len(parts) > 2 or all(p in ("", "..") for p in parts):
        raise Problem(400, f"datetime {raw[:60]!r} must be an instant or an interval start/end ('..' for open)")
    instants = []
    for part in parts:
        if part in ("", ".."):
            continue
        try:
            instant = dt.datetime.fromisoformat(part.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise Problem(400, f"datetime {part[:60]!r} is not an RFC 3339 date or date-time") from None
        instants.append(instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC))
    if len(instants) == 2 and instants[0] > instants[1]:
        raise Problem(400, f"datetime interval {raw[:60]!r} ends before it starts")


def _no_hidden_properties(ctx: Context, request: Request) -> None:
    """`?name=value` on an attribute the caller sees masked or not at all would test its stored
    value: refused, as a filter naming it is (gis.security)."""
    from gis.features.cql import queryables

    if request.path_params["collection_id"] in ctx.aggregates:
        return  # their properties are figures, not attributes (gis.aggregates)
    layer = ctx.layer(request.path_params["collection_id"])
    names = {a.name for a in layer.attributes} - set(queryables(layer))
    hidden = sorted(names & set(request.query_params))
    if hidden:
        raise Problem(400, f"{', '.join(hidden)}: not queryable in {layer.id}; see /collections/{layer.id}/queryables")


def filter_(ctx: Context, request: Request, api_request: APIRequest) -> None:
    from gis.features.cql import FilterError, parse_filter, validate

    params = request.query_params
    _no_hidden_properties(ctx, request)
    lang = params.get("filter-lang")
    text = params.get("filter")
    if lang is not None and lang not in ("cql2-text", "cql2-json"):
        raise Problem(400, f"filter-lang {lang[:40]!r} is not supported; use cql2-text or cql2-json")
    if text is None:
        if lang is not None:
            raise Problem(400, "filter-lang given without a filter")
        return
    layer = ctx.layer(request.path_params["collection_id"])
    try:
        validate(parse_filter(text, lang), layer)
    except FilterError as err:
        raise Problem(400, f"filter: {err}") from None
    if lang == "cql2-json":
        # pygeoapi reads CQL2-JSON from the request body only: hand it over that way
        api_request._data = text.encode()
        _drop_params(api_request, "filter", "filter-lang")
