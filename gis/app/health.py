"""Liveness and readiness: /healthz says the process answers, /readyz that the store does
(reachable, every layer table there, schema at the newest migration)."""

from __future__ import annotations

from sqlalchemy import inspect, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gis.storage import migrations
from gis.storage.store import Store


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _check(store: Store) -> dict:
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        tables = set(inspect(conn).get_table_names(schema=store.schema))
        revision = migrations.current(conn, store)
    missing = [layer.id for layer in store.catalog if layer.id not in tables]
    head = migrations.head()
    schema = "current" if revision == head else f"behind: revision {revision or 'none'}, newest {head}; run onemap migrate"
    return {"database": "reachable", "missing_layers": missing, "schema": schema}


async def readyz(request: Request) -> JSONResponse:
    store: Store = request.app.state.store
    try:
        report = await run_in_threadpool(_check, store)
    except Exception as err:  # any failure to reach the store means not ready
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(err).__name__}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    if report["missing_layers"] or report["schema"] != "current":
        return JSONResponse({"status": "unavailable", **report}, status_code=503, headers={"Retry-After": "30"})
    return JSONResponse({"status": "ok", **report})


ROUTES = [Route("/healthz", healthz, methods=["GET", "HEAD"]), Route("/readyz", readyz, methods=["GET", "HEAD"])]
