"""The case loop over HTTP: report a case, move it through its workflow, read its history.

- `GET /cases/workflow`: the workflow file as JSON (states, actions and who may take them,
  categories with their deadlines), for clients that build their forms from it.
- `POST /cases`: a report (a GeoJSON Point feature: category, priority, source, description…);
  the case gets its number, status `reported`, the time, and its grid and street from the grids
  layer. 201 + Location + ETag.
- `POST /cases/{id}/transitions` with `{"action": …}` (and `department`, `note`, `reason` as the
  action requires) and `If-Match: <the case's ETag>`: 200 with the case and its new ETag. An
  action the case's status does not allow: 409 naming those it does (`allowed`); a role that may
  not take it, or a case outside the caller's grid or department: 403; a case the caller may not
  see: 404; a stale ETag (someone else moved the case first): 412.
- `GET /cases/{id}/history`: every transition, oldest first.

A transition is one edit of the case's row through gis.edit.writer (its row lock and ETag check),
with the history row and the audit entry written in the same transaction: it happens whole or
not at all, and of two transitions made from the same ETag exactly one wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis.app.problems import Problem
from gis.cases import openapi
from gis.cases.history import CaseHistory, iso
from gis.cases.places import GridLookup
from gis.cases.workflow import Action, Workflow
from gis.edit import validate
from gis.edit.routes import read_body, stored_feature, write
from gis.edit.writer import FeatureWriter
from gis.ogc.checks import ITEM_ID, Context
from gis.security.principal import current
from gis.storage.store import Store

Clock = Callable[[], dt.datetime]
MAX_TEXT = 2000  # a note, a reason or a description
REPORTED_FIELDS = ("category", "subcategory", "description", "component_id", "source", "priority", "reporter")
REPORT_REQUIRED = frozenset({"category", "source"})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CaseService:
    def __init__(self, store: Store, context: Context, workflow: Workflow, writer: FeatureWriter,
                 clock: Clock = utc_now, city_extent: Callable[[], tuple | None] = lambda: None, audit: bool = True):
        self.store = store
        self.context = context
        self.workflow = workflow
        self.writer = writer
        self.clock = clock
        self.layer_id = workflow.layer
        self.history = CaseHistory(store).ensure()
        self.grids = GridLookup(store)
        self.audit = audit
        self.city_extent = city_extent  # a report must lie in the city (gis.edit.routes.EditService)

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/cases/workflow", self.describe, methods=["GET", "HEAD"]),
            Route("/cases", self.report, methods=["POST"]),
            Route("/cases/{case_id}/transitions", self.transition, methods=["POST"]),
            Route("/cases/{case_id}/history", self.case_history, methods=["GET", "HEAD"]),
        ]

    @property
    def links(self) -> tuple[tuple[str, str, Callable[[], bool]], ...]:
        """What the landing page links, for callers who may read cases (gis.ogc.links)."""
        return (("/cases/workflow", "The case workflow: states, actions, categories",
                 lambda: current().may_read_features(self.layer_id)),)

    def openapi(self, principal) -> dict[str, dict]:
        """The loop's paths in a role's /openapi (gis.cases.openapi)."""
        return openapi.paths(self.workflow, principal)

    # -- routes ------------------------------------------------------------------------------------

    async def describe(self, request: Request) -> JSONResponse:
        self.context.layer(self.layer_id)  # 404 for a role that may not read cases
        return JSONResponse(self.workflow.model_dump(mode="json", by_alias=True))

    async def report(self, request: Request) -> Response:
        layer = self.context.layer(self.layer_id)
        who = current()
        if who.role not in self.workflow.report_roles:
            raise Problem(403, f"a {who.role} may not report cases; roles that may: {', '.join(self.workflow.report_roles)}")
        document = await _json_body(request, ("application/geo+json", "application/json"))
        try:
            crs_uri = validate.content_crs(request.headers.get("content-crs"))
            city = await run_in_threadpool(self.city_extent)
            edit = validate.feature(document, layer, crs_uri, city, None, required=REPORT_REQUIRED)
        except validate.Invalid as err:
            raise Problem(err.status, str(err)) from None
        given = {k: v for k, v in edit.values.items() if v is not None}
        managed = sorted(set(given) - set(REPORTED_FIELDS) - {"grid", "street"})
        if managed:
            raise Problem(400, f"{', '.join(managed)} are set by the workflow, not by a report: leave them out")
        category = self.workflow.categories.get(str(given.get("category")))
        if category is None:
            raise Problem(400, f"category must be one of {', '.join(self.workflow.categories)} (GET /cases/workflow)")
        now = self.clock()
        grid, street = await run_in_threadpool(self.grids.locate, edit.geometry)
        values = {
            **given, "kind": category.kind, "status": self.workflow.initial, "reported_at": _utc(now),
            "grid": grid or given.get("grid"), "street": street or given.get("street"), "reopened": 0,
        }
        values.setdefault("priority", "normal")
        table = self.store.tables[layer.id]
        scope = who.area_clause(layer, table)

        def record(conn, result):
            conn.execute(table.update().where(table.c.id == result.id).values(case_no=self._case_no(now, result.id)))
            self.history.append(conn, result.id, "report", None, self.workflow.initial, now, who)
            self._audit(conn, "case.report", result, {"status": self.workflow.initial})

        values["case_no"] = "pending"
        result = await self._write(self.writer.create, layer.id, edit.geometry, values, scope=scope, on_write=record)
        etag = await run_in_threadpool(self.writer.etag, layer.id, result.id)
        case = await run_in_threadpool(self._case, result.id)
        base = self.store.settings.server.public_url
        return JSONResponse(case, status_code=201, media_type="application/geo+json",
                            headers={"Location": f"{base}/collections/{layer.id}/items/{result.id}", "ETag": etag or ""})

    async def transition(self, request: Request) -> JSONResponse:
        layer = self.context.layer(self.layer_id)
        case_id = _case_id(request)
        body = await _json_body(request, ("application/json",))
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise Problem(400, 'send {"action": "<name>"} (and the fields it requires); GET /cases/workflow lists them')
        unknown = sorted(set(body) - {"action", "department", "note", "reason"})
        if unknown:
            raise Problem(400, f"unknown fields {unknown}: a transition takes action, department, note and reason")
        if_match = request.headers.get("if-match")
        if not if_match:
            raise Problem(428, "a transition needs If-Match with the case's ETag (GET the case first), so that of "
                          "two people acting on one case only one succeeds", "PreconditionRequired")
        found = await run_in_threadpool(self._visible_row, case_id)
        etag, values = found
        if not any(tag.strip() == etag for tag in if_match.split(",")):
            raise Problem(412, f"case {case_id} changed since you read it (its ETag is now {etag}): GET it again",
                          "PreconditionFailed")
        name = body["action"]
        action = self._checked_action(name, values)
        self._check_scope(action, values)
        fields = self._required(action, body)
        now = self.clock()
        changes: dict[str, object] = {"status": action.to}
        if action.stamp:
            changes[action.stamp] = _utc(now)
        if "department" in fields:
            changes["department"] = fields["department"]
        if action.deadline == "start":
            changes["deadline"] = _utc(self.workflow.deadline(values["category"], values["priority"], now))
        if action.reopen:
            changes["reopened"] = int(values.get("reopened") or 0) + 1
        who = current()

        def record(conn, result):
            self.history.append(conn, case_id, name, values["status"], action.to, now, who,
                                changes.get("department"), fields.get("note"), fields.get("reason"))
            self._audit(conn, f"case.{name}", result, {"from": values["status"], "to": action.to})

        result = await self._write(self.writer.patch, layer.id, case_id, None, changes, if_match, on_write=record)
        case = await run_in_threadpool(self._case, case_id)
        return JSONResponse(case, media_type="application/geo+json", headers={"ETag": result.etag or ""})

    async def case_history(self, request: Request) -> JSONResponse:
        self.context.layer(self.layer_id)
        case_id = _case_id(request)
        _, values = await run_in_threadpool(self._visible_row, case_id)
        steps = await run_in_threadpool(self.history.read, case_id)
        deadline = values.get("deadline")
        return JSONResponse({
            "case": case_id, "status": values["status"], "deadline": iso(deadline) if deadline else None,
            "overdue": self.overdue(values), "history": steps,
        })

    def overdue(self, values: dict) -> bool:
        """Past its deadline: still with the department at this moment, or fed back after it."""
        deadline = values.get("deadline")
        if deadline is None:
            return False
        fed_back = values.get("fed_back_at")
        if fed_back is not None and values["status"] not in ("dispatched", "in_progress"):
            return fed_back > deadline
        return values["status"] in self.workflow.open_states and self.clock() > deadline

    # -- the workflow's checks ---------------------------------------------------------------------

    def _checked_action(self, name: str, values: dict) -> Action:
        status, role = values["status"], current().role
        action = self.workflow.actions.get(name)
        allowed = self.workflow.permitted(status, role)
        if action is None:
            raise Problem(400, f"no action {name[:40]!r}; actions are {', '.join(self.workflow.actions)}")
        if status not in action.sources:
            raise Problem(409, f"a case that is {status} cannot {name}; you may: {', '.join(allowed) or 'nothing'}",
                          "Conflict", extra={"status_now": status, "allowed": allowed})
        if role not in action.roles:
            raise Problem(403, f"a {role} may not {name} a case; roles that may: {', '.join(action.roles)}",
                          extra={"allowed": allowed})
        return action

    def _check_scope(self, action: Action, values: dict) -> None:
        who = current()
        if action.scope == "department":
            mine = who.departments or frozenset()
            if values.get("department") not in mine:
                raise Problem(403, f"this case is dispatched to {values.get('department')!r}, not to your department"
                              f"{'s ' + ', '.join(sorted(mine)) if mine else ' (your key names none)'}")
        elif action.scope == "grid" and who.restricted:
            in_grid = who.grids is not None and values.get("grid") in who.grids
            in_street = who.streets is not None and values.get("street") in who.streets
            if not (in_grid or in_street):
                raise Problem(403, f"this case lies in grid {values.get('grid')!r}, outside the grids and streets you may act in")

    def _required(self, action: Action, body: dict) -> dict[str, str]:
        fields = {}
        for name in action.requires:
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                raise Problem(400, f"this action requires {name!r}: a non-empty string")
            fields[name] = value.strip()
        for name in ("note", "reason", "department"):
            value = body.get(name)
            if value is not None and name not in fields:
                if not isinstance(value, str):
                    raise Problem(400, f"{name!r} must be a string")
                fields[name] = value.strip()
        for name, value in fields.items():
            if len(value) > MAX_TEXT:
                raise Problem(400, f"{name!r} is over {MAX_TEXT} characters")
        if "department" in fields and "department" not in action.requires:
            raise Problem(400, "only a dispatch names a department")
        return fields

    # -- the store ---------------------------------------------------------------------------------

    def _visible_row(self, case_id: int) -> tuple[str, dict]:
        """The case's (ETag, values) as the caller may see it: 404 when absent or out of the caller's area."""
        layer = self.store.catalog[self.layer_id]
        row = self.writer.read(self.layer_id, case_id)
        table = self.store.tables[self.layer_id]
        scope = current().area_clause(layer, table)
        if row is None or (scope is not None and not self._in(scope, case_id)):
            raise Problem(404, f"no case {case_id}", "NotFound")
        return row[0], row[1]

    def _in(self, scope, case_id: int) -> bool:
        table = self.store.tables[self.layer_id]
        with self.store.engine.connect() as conn:
            return conn.execute(select(table.c.id).where(table.c.id == case_id, scope)).first() is not None

    def _case(self, case_id: int) -> dict:
        """The case as a GeoJSON feature with the attributes the caller sees unmasked (the masked
        ones, as /collections/cases/items/{id} shows them, are left to that page)."""
        layer = self.store.catalog[self.layer_id]
        shown = {a.name for a, masked in current().attributes(layer) if not masked}
        return stored_feature(self.writer, layer, case_id, shown)

    def _case_no(self, now: dt.datetime, case_id: int) -> str:
        local = now.astimezone(self.workflow.working_time.zone)
        return f"{self.workflow.number_prefix}-{local.year}-{case_id:07d}"

    def _audit(self, conn, action: str, result, detail: dict) -> None:
        if not self.audit:
            return
        from gis.security import audit

        audit.record(self.store, action, f"{result.layer}/{result.id}", bbox=result.new_bbox, features=1,
                     detail={**detail, "version": result.version}, conn=conn)

    async def _write(self, method, *args, **kwargs):
        return await write(method, *args, what="transition", **kwargs)


def case_service(settings, store: Store, context: Context, edits, clock: Clock = utc_now) -> CaseService | None:
    """The loop of the workflow file, when there is one and its layer is in the catalog."""
    workflow = Workflow.for_catalog(settings.server.layers_dir, store.catalog)
    if workflow is None:
        return None
    return CaseService(store, context, workflow, edits.writer, clock, edits.city_extent)


def _case_id(request: Request) -> int:
    raw = request.path_params["case_id"]
    if not ITEM_ID.match(raw):
        raise Problem(404, f"no case {raw[:40]!r}: case ids are integers")
    return int(raw)


def _utc(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.fromisoformat(iso(moment).replace("Z", "+00:00"))


async def _json_body(request: Request, media_types: tuple[str, ...]):
    raw = await read_body(request, media_types)
    try:
        return validate.parse_json(raw)
    except validate.Invalid as err:
        raise Problem(err.status, str(err)) from None
