"""`/stats`: indicator values by area, as JSON or CSV; `/stats/indicators`: the registry.

GET /stats?indicator=residents&by=grid            every grid's value
GET /stats?indicator=residents&by=h3&res=8         every H3 cell's value at resolution 8
POST /stats {"indicator": ..., "polygon": GeoJSON}  the value inside a polygon (CRS84)
"""

from __future__ import annotations

import csv
import io

import h3
import shapely
from pyproj import Geod
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis.app import bodies
from gis.app.problems import Problem
from gis.features.cql import FilterError
from gis.security import audit
from gis.security.principal import current
from gis.security.roles import is_sensitive
from gis.stats.aggregate import AREAS, MAX_POLYGON_CELLS, POLYGON_RES, Answer, StatsError, aggregate
from gis.stats.answers import Answers
from gis.stats.indicators import Indicators
from gis.storage.store import Store

_GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid
# what MAX_POLYGON_CELLS cells of the suppression resolution cover, with room for edge cells
MAX_POLYGON_KM2 = MAX_POLYGON_CELLS * h3.average_hexagon_area(POLYGON_RES, "km^2") * 0.9


class StatsService:
    def __init__(self, store: Store, indicators: Indicators, k: int):
        self.store = store
        self.indicators = indicators
        self.k = k
        self.answers = Answers(store)  # whole-area answers, per data version

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/stats/indicators", self.list_indicators, methods=["GET", "HEAD"]),
            Route("/stats", self.stats, methods=["GET", "HEAD", "POST"]),
        ]

    def _allowed(self, indicator) -> bool:
        return current().may_use_indicator(indicator.id, indicator.layer)

    async def list_indicators(self, request: Request) -> Response:
        # an indicator the caller may not see is absent, as layers are (gis.security)
        shown = [i.describe() for i in self.indicators if self._allowed(i)]
        return JSONResponse({"indicators": shown, "k": self.k})

    async def stats(self, request: Request) -> Response:
        params = dict(request.query_params)
        polygon = None
        if request.method == "POST":
            body = await bodies.json_object(request)
            params.update({k: str(v) for k, v in body.items() if k in ("indicator", "by", "res", "f")})
            if "polygon" in body:
                polygon = _polygon(body["polygon"])
        indicator_id = params.get("indicator")
        if not indicator_id:
            raise Problem(400, "indicator is required; see /stats/indicators for the list")
        indicator = self.indicators.get(indicator_id)
        if indicator is None or not self._allowed(indicator):
            raise Problem(404, f"no indicator {indicator_id[:60]!r}; see /stats/indicators for the list", "NotFound")
        area = params.get("by", "city")
        if area not in AREAS:
            raise Problem(400, f"by must be one of {', '.join(AREAS)}, got {area[:40]!r}")
        res = _resolution(params.get("res"))
        fmt = params.get("f", "json")
        if fmt not in ("json", "csv"):
            raise Problem(400, f"f must be json or csv, got {fmt[:20]!r}")
        principal = current()
        # suppression protects people from whoever may not see them one by one
        individual = principal.individual_access(indicator.layer)
        try:
            if polygon is None:
                key = (indicator.id, area, res, self.k, individual, principal.streets, principal.grids)
                compute = lambda: aggregate(self.store, indicator, area, res, None, self.k, individual)  # noqa: E731
                answer = await run_in_threadpool(self.answers.get, indicator, area, key, compute)
            else:
                answer = await run_in_threadpool(aggregate, self.store, indicator, area, res, polygon, self.k, individual)
        except (StatsError, FilterError) as err:
            raise Problem(400, str(err)) from None
        if is_sensitive(self.store.catalog[indicator.layer]):
            audit.record(
                self.store, "stats", indicator.layer, filter={"indicator": indicator.id, "by": area, "res": res},
                bbox=None if polygon is None else list(polygon.bounds), features=_total(answer), principal=principal,
            )
        return _csv(answer) if fmt == "csv" else JSONResponse(answer.as_json())


def _polygon(value) -> shapely.Geometry:
    try:
        shape = shapely.geometry.shape(value)
    except Exception:
        raise Problem(400, "polygon must be a GeoJSON Polygon or MultiPolygon in CRS84 (lon/lat)") from None
    if shape.geom_type not in ("Polygon", "MultiPolygon"):
        raise Problem(400, f"polygon must be a Polygon or MultiPolygon, got {shape.geom_type}")
    minx, miny, maxx, maxy = shape.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise Problem(400, "polygon coordinates must be longitude/latitude (CRS84)")
    if not shape.is_valid:
        raise Problem(400, f"polygon is not valid: {shapely.is_valid_reason(shape)}")
    # bound the work before any cell is listed: a continent would take minutes to cover in cells
    area_km2 = abs(_GEOD.geometry_area_perimeter(shape)[0]) / 1e6
    if area_km2 > MAX_POLYGON_KM2:
        raise Problem(400, f"polygon covers about {area_km2:,.0f} km²; the limit is {MAX_POLYGON_KM2:,.0f} km² (ask by district or street instead)")
    return shape


def _total(answer: Answer) -> int | None:
    total = answer.total
    return None if total is None else int(total)


def _resolution(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise Problem(400, f"res must be an integer H3 resolution, got {raw[:20]!r}")
    return int(raw)


def _csv(answer: Answer) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", "value"])
    document = answer.as_json()
    for group in document["groups"]:
        writer.writerow([group["key"], group["value"]])
    # a last row keeps the column's sum equal to the total, as in the JSON
    writer.writerow(["suppressed", "" if document["suppressed"]["value"] is None else document["suppressed"]["value"]])
    filename = f"{answer.indicator.id}-by-{answer.area}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
