"""OGC API - Processes: one process, `aggregate`, executed synchronously.

GET  /processes                          the process list
GET  /processes/aggregate                its description (inputs, outputs)
POST /processes/aggregate/execution      {"inputs": {...}} -> the aggregate, as /stats answers it

The process takes an indicator of the registry or a layer (counted, or an attribute summed),
an optional CQL2 filter on the layer's queryable attributes, an area (`by`, `res`) and an
optional polygon. It computes through gis.stats.aggregate like /stats, so the numbers, the
small-cell suppression and the protection against differencing polygons are the same.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis.aggregates.access import individual_access
from gis.app import bodies
from gis.app.problems import Problem
from gis.features.cql import FilterError
from gis.processes.inputs import Question, parse_inputs
from gis.stats.aggregate import StatsError, aggregate
from gis.stats.indicators import Indicators
from gis.storage.store import Store

PROCESS_ID = "aggregate"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
]


class ProcessService:
    conformance = CONFORMANCE

    def __init__(self, store: Store, indicators: Indicators, k: int, base_url: str):
        self.store = store
        self.indicators = indicators
        self.k = k
        self.base_url = base_url.rstrip("/")

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/processes", self.list_processes, methods=["GET", "HEAD"]),
            Route("/processes/{process_id}", self.describe, methods=["GET", "HEAD"]),
            Route("/processes/{process_id}/execution", self.execute, methods=["POST"]),
        ]

    async def list_processes(self, request: Request) -> Response:
        summary = self._summary()
        return JSONResponse({
            "processes": [summary],
            "links": [{"href": f"{self.base_url}/processes", "rel": "self", "type": "application/json"}],
        })

    async def describe(self, request: Request) -> Response:
        self._process(request)
        return JSONResponse(self._summary() | {"inputs": _inputs(self.indicators), "outputs": OUTPUTS})

    async def execute(self, request: Request) -> Response:
        self._process(request)
        body = await bodies.json_object(request)
        inputs = body.get("inputs", {})
        if not isinstance(inputs, dict):
            raise Problem(400, "inputs must be a JSON object of input id to value; see /processes/aggregate")
        if body.get("response", "raw") not in ("raw", "document"):
            raise Problem(400, "response must be raw or document")
        question: Question = parse_inputs(inputs, self.store.catalog, self.indicators)
        try:
            answer = await run_in_threadpool(
                aggregate, self.store, question.indicator, question.area, question.res, question.polygon,
                self.k, individual_access(question.indicator.layer),
            )
        except (StatsError, FilterError) as err:
            raise Problem(400, str(err)) from None
        result = answer.as_json()
        if body.get("response") == "document":
            result = {"outputs": {"aggregate": {"value": result, "mediaType": "application/json"}}}
        return Response(json.dumps(result, ensure_ascii=False), media_type="application/json")

    def _process(self, request: Request) -> None:
        process_id = request.path_params["process_id"]
        if process_id != PROCESS_ID:
            raise Problem(404, f"no process {process_id[:60]!r}; see /processes for the list", "NoSuchProcess")

    def _summary(self) -> dict:
        url = f"{self.base_url}/processes/{PROCESS_ID}"
        return {
            "id": PROCESS_ID,
            "title": "Aggregate an indicator or a layer",
            "description": (
                "Counts or sums of an indicator (see /stats/indicators) or a layer, optionally filtered "
                "with CQL2 on the layer's queryable attributes, for the city, each district, street, "
                "grid or H3 cell, or inside a polygon. The same numbers as /stats; groups of fewer "
                "than k people are withheld and counted in `suppressed`."
            ),
            "version": "1.0.0",
            "jobControlOptions": ["sync-execute"],
            "outputTransmission": ["value"],
            "links": [
                {"href": url, "rel": "self", "type": "application/json", "title": "process description"},
                {
                    "href": f"{url}/execution", "type": "application/json", "title": "execute (POST)",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                },
            ],
        }


def _inputs(indicators: Indicators) -> dict:
    one = {"minOccurs": 0, "maxOccurs": 1}
    return {
        "indicator": {"title": "Indicator id", **one, "schema": {"type": "string", "enum": [i.id for i in indicators]}},
        "layer": {"title": "Layer id, when no indicator is given", **one, "schema": {"type": "string"}},
        "measure": {
            "title": "count, or sum:<numeric attribute> of the layer (with layer only)", **one,
            "schema": {"type": "string", "default": "count"},
        },
        "filter": {"title": "CQL2 text on the layer's queryable attributes", **one, "schema": {"type": "string"}},
        "by": {
            "title": "Area", **one,
            "schema": {"type": "string", "enum": ["city", "district", "street", "grid", "h3"], "default": "city"},
        },
        "res": {"title": "H3 resolution (by=h3)", **one, "schema": {"type": "integer", "minimum": 0, "maximum": 12}},
        "polygon": {
            "title": "Polygon (GeoJSON, CRS84) to aggregate within", **one,
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
        },
    }


OUTPUTS = {
    "aggregate": {
        "title": "The aggregate, as /stats answers it",
        "schema": {
            "type": "object", "contentMediaType": "application/json",
            "required": ["indicator", "by", "total", "groups", "suppressed"],
        },
    }
}
