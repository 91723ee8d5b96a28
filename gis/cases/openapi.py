"""The case loop's routes in /openapi (gis.cases.routes), for a caller who may read cases.

The actions, departments' requirements and categories come from the workflow, so the document
offers exactly what the server accepts; the roles that may take each action are in its text.
"""

from __future__ import annotations

from gis.cases.workflow import Workflow
from gis.openapi.components import RETRY_AFTER, problem, ref
from gis.security.principal import Principal

_CASE_ID = {"name": "case_id", "in": "path", "required": True, "description": "the case's id (its feature id)",
            "schema": {"type": "string"}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": True,
             "description": "the case's ETag, from its item or the last transition", "schema": {"type": "string"}}
_CASE = {"description": "the case as a GeoJSON feature (the attributes the caller sees unmasked)",
         "headers": {"ETag": {"schema": {"type": "string"}}},
         "content": {"application/geo+json": {"schema": ref("schemas", "feature")}}}
_STEP = {"type": "object", "properties": {
    "step": {"type": "integer"}, "action": {"type": "string"}, "from_status": {"type": "string", "nullable": True},
    "to_status": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "subject": {"type": "string"},
    "role": {"type": "string"}, "department": {"type": "string", "nullable": True},
    "note": {"type": "string", "nullable": True}, "reason": {"type": "string", "nullable": True}}}
_UNAVAILABLE = problem("the store could not take the change; nothing was written: retry", RETRY_AFTER)


def paths(workflow: Workflow, principal: Principal) -> dict[str, dict]:
    if not principal.may_read_features(workflow.layer):
        return {}
    actions = "; ".join(f"`{name}` ({', '.join(a.roles)}{': needs ' + ', '.join(a.requires) if a.requires else ''})"
                        for name, a in workflow.actions.items())
    transition = {
        "type": "object", "required": ["action"], "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": list(workflow.actions)},
            "department": {"type": "string", "minLength": 1, "description": "the department a dispatch sends the case to"},
            "note": {"type": "string", "minLength": 1, "maxLength": 2000},
            "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
        },
    }
    report = {
        "type": "object", "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "geometry": {"type": "object", "required": ["type", "coordinates"], "properties": {
                "type": {"type": "string", "enum": ["Point"]},
                "coordinates": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}}},
            "properties": {"type": "object", "required": ["category", "source"], "additionalProperties": False, "properties": {
                "category": {"type": "string", "enum": list(workflow.categories)},
                "subcategory": {"type": "string"}, "description": {"type": "string"},
                "component_id": {"type": "integer", "minimum": 1},
                "source": {"type": "string", "enum": ["grid_member", "hotline_12345", "camera_alert", "public"]},
                "priority": {"type": "string", "enum": ["normal", "urgent", "emergency"]},
                "reporter": {"type": "string"}}},
        },
    }
    return {
        "/cases/workflow": {"get": {
            "summary": "The case workflow: its states, actions (and who may take them), categories and deadlines",
            "operationId": "getCaseWorkflow", "tags": ["cases"],
            "responses": {"200": {"description": "layers/workflows/cases.yml as JSON",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "404": problem("the caller's role may not read cases")},
        }},
        "/cases": {"post": {
            "summary": f"Report a case (roles: {', '.join(workflow.report_roles)}); it starts as `{workflow.initial}`",
            "operationId": "reportCase", "tags": ["cases"],
            "requestBody": {"required": True, "content": {"application/geo+json": {"schema": report},
                                                          "application/json": {"schema": report}}},
            "responses": {
                "201": {**_CASE, "description": "the new case; Location is its item",
                        "headers": {**_CASE["headers"], "Location": {"schema": {"type": "string"}}}},
                "400": problem("not a Point feature of a known category, or it sets what the workflow sets"),
                "403": problem("the caller's role may not report, or the point lies outside its grids"),
                "404": problem("the caller's role may not read cases"),
                "413": problem("the body is too large"),
                "415": problem("the body is not GeoJSON"),
                "503": _UNAVAILABLE,
            },
        }},
        "/cases/{case_id}/transitions": {"post": {
            "summary": "Take an action on a case: " + actions,
            "operationId": "transitionCase", "tags": ["cases"], "parameters": [_CASE_ID, _IF_MATCH],
            "requestBody": {"required": True, "content": {"application/json": {"schema": transition}}},
            "responses": {
                "200": {**_CASE, "description": "the case after the action, with its new ETag"},
                "400": problem("an unknown action or field, or a field the action requires is missing"),
                "403": problem("the caller's role may not take the action, or the case is not in its grid or department"),
                "404": problem("no such case for the caller"),
                "409": problem("the case's status does not allow the action; `allowed` lists what the caller may do"),
                "412": problem("the case changed since its ETag was read: GET it again"),
                "413": problem("the body is too large"),
                "415": problem("the body is not JSON"),
                "428": problem("If-Match is missing"),
                "503": _UNAVAILABLE,
            },
        }},
        "/cases/{case_id}/history": {"get": {
            "summary": "Every step of a case, oldest first, with its deadline and whether it is overdue",
            "operationId": "getCaseHistory", "tags": ["cases"], "parameters": [_CASE_ID],
            "responses": {
                "200": {"description": "the case's history", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "case": {"type": "integer"}, "status": {"type": "string"},
                        "deadline": {"type": "string", "nullable": True}, "overdue": {"type": "boolean"},
                        "history": {"type": "array", "items": _STEP}}}}}},
                "404": problem("no such case for the caller"),
            },
        }},
    }
