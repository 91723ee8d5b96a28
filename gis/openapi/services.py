"""/stats, the process `aggregate`, and the operational routes (/healthz, /readyz, /metrics) in /openapi.

Read from gis/stats/api.py, gis/processes/api.py, gis/app/health.py and gis/app/metrics.py: the
parameters they read and the answers they give. Indicators a role may not use are absent from
its document's choices, as they are from its /stats/indicators.
"""

from __future__ import annotations

from gis.openapi.components import RETRY_AFTER, problem, ref
from gis.processes.api import PROCESS_ID
from gis.security.principal import Principal
from gis.stats.aggregate import AREAS


def _query(name: str, description: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_ANSWER = {
    "type": "object",
    "required": ["indicator", "by", "total", "groups", "suppressed"],
    "properties": {
        "indicator": {"type": "object", "description": "the indicator as /stats/indicators describes it"},
        "by": {"type": "string", "enum": list(AREAS)},
        "res": {"type": "integer", "nullable": True},
        "k": {"type": "integer", "nullable": True, "description": "groups of fewer than k people are withheld"},
        "total": {"type": "number", "nullable": True},
        "groups": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "value": {"type": "number", "nullable": True}}}},
        "suppressed": {"type": "object", "properties": {"groups": {"type": "integer"}, "value": {"type": "number", "nullable": True}}},
    },
}
SCHEMAS = {"statsAnswer": _ANSWER}
_STATS_ANSWER = {
    "description": "the indicator's value per area (CSV with f=csv: key,value rows and a last `suppressed` row)",
    "content": {"application/json": {"schema": ref("schemas", "statsAnswer")},
                "text/csv": {"schema": {"type": "string"}}},
}


def stats(indicators, principal: Principal) -> dict[str, dict]:
    allowed = [i.id for i in indicators if principal.may_use_indicator(i.id, i.layer)]
    indicator = {"type": "string", "enum": allowed} if allowed else {"type": "string"}
    by = {"type": "string", "enum": list(AREAS), "default": "city"}
    res = {"type": "integer", "minimum": 0, "maximum": 15}
    fmt = {"type": "string", "enum": ["json", "csv"], "default": "json"}
    errors = {
        "400": problem("indicator missing, or by, res, f or the polygon not usable; the detail says which"),
        "404": problem("no such indicator for the caller's role"),
        "413": problem("the body is over 1 MB"),
        "503": problem("the store is unavailable or too slow; retry", RETRY_AFTER),
    }
    question = {
        "type": "object",
        "properties": {
            "indicator": indicator, "by": by, "res": res, "f": fmt,
            "polygon": {"type": "object", "description": "a GeoJSON Polygon or MultiPolygon in CRS84 to aggregate within",
                        "properties": {"type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
                                       "coordinates": {"type": "array"}}},
        },
    }
    return {
        "/stats/indicators": {"get": {
            "summary": "The indicators the caller may use, with the suppression threshold k",
            "operationId": "getIndicators", "tags": ["stats"],
            "responses": {"200": {"description": "the registry", "content": {"application/json": {"schema": {
                "type": "object", "required": ["indicators", "k"],
                "properties": {"indicators": {"type": "array", "items": {"type": "object"}}, "k": {"type": "integer"}}}}}}},
        }},
        "/stats": {
            "get": {
                "summary": "An indicator's value for the city, each district, street, grid or H3 cell",
                "operationId": "getStats", "tags": ["stats"],
                "parameters": [
                    _query("indicator", "the indicator (see /stats/indicators)", indicator, required=True),
                    _query("by", "the areas to answer for", by),
                    _query("res", "the H3 resolution, with by=h3", res),
                    _query("f", "the answer's format", fmt),
                ],
                "responses": {"200": _STATS_ANSWER, **errors},
            },
            "post": {
                "summary": "An indicator's value inside a polygon (or per area), asked in a JSON body",
                "operationId": "postStats", "tags": ["stats"],
                "requestBody": {"required": False, "content": {"application/json": {"schema": question}}},
                "responses": {"200": _STATS_ANSWER, **errors},
            },
        },
    }


def processes(indicators) -> dict[str, dict]:
    process_id = {"name": "processId", "in": "path", "required": True, "description": "the process",
                  "schema": {"type": "string", "enum": [PROCESS_ID]}}
    missing = problem("no such process")
    execute = {
        "type": "object",
        "properties": {
            "inputs": {"type": "object", "description": "input id to value; see the process description",
                       "properties": {
                           "indicator": {"type": "string", "enum": [i.id for i in indicators]},
                           "layer": {"type": "string"}, "measure": {"type": "string"}, "filter": {"type": "string"},
                           "by": {"type": "string", "enum": list(AREAS)},
                           "res": {"type": "integer", "minimum": 0, "maximum": 15},
                           "polygon": {"type": "object"},
                       }},
            "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"},
        },
    }
    return {
        "/processes": {"get": {
            "summary": "The processes (OGC API - Processes)", "operationId": "getProcesses", "tags": ["processes"],
            "responses": {"200": {"description": "the process list", "content": {"application/json": {"schema": {
                "type": "object", "required": ["processes", "links"],
                "properties": {"processes": {"type": "array", "items": {"type": "object"}}, "links": {
                    "type": "array", "items": ref("schemas", "link")}}}}}}},
        }},
        "/processes/{processId}": {"get": {
            "summary": "A process's description: its inputs and outputs", "operationId": "describeProcess",
            "tags": ["processes"], "parameters": [process_id],
            "responses": {"200": {"description": "the process description",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "404": missing},
        }},
        "/processes/{processId}/execution": {"post": {
            "summary": "Run the process synchronously", "operationId": "executeProcess", "tags": ["processes"],
            "parameters": [process_id],
            "requestBody": {"required": False, "content": {"application/json": {"schema": execute}}},
            "responses": {
                "200": {"description": "the aggregate as /stats answers it (raw), or wrapped in outputs (document)",
                        "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": problem("inputs not usable; the detail says which"),
                "404": missing,
                "413": problem("the body is over 1 MB"),
                "503": problem("the store is unavailable or too slow; retry", RETRY_AFTER),
            },
        }},
    }


def operations() -> dict[str, dict]:
    status = {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}}}
    return {
        "/healthz": {"get": {
            "summary": "Liveness: the process answers", "operationId": "getHealth", "tags": ["operations"],
            "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": status}}}},
        }},
        "/readyz": {"get": {
            "summary": "Readiness: the store is reachable, every layer table there, the schema current",
            "operationId": "getReadiness", "tags": ["operations"],
            "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": status}}},
                "503": {"description": "not ready: the store is unreachable, a layer table missing or the schema behind",
                        "headers": RETRY_AFTER, "content": {"application/json": {"schema": status}}},
            },
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics: requests by route and status, latency, tile cache, database pool",
            "operationId": "getMetrics", "tags": ["operations"],
            "responses": {"200": {"description": "the Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }
