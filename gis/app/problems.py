"""Errors as RFC 9457 problem details, for every route OneMap serves.

OGC clients read `code`/`description` (pygeoapi's shape); generic HTTP clients read
`type`/`title`/`status`/`detail`. Every error body carries both, so neither has to guess.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

LOG = logging.getLogger("onemap.errors")
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raised anywhere below a route to end the request with a problem-details answer."""

    def __init__(self, status: int, detail: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _default_code(status)
        self.headers = headers or {}
        self.extra = extra or {}  # extension members (RFC 9457), e.g. the actions a case allows


def _default_code(status: int) -> str:
    return {
        400: "InvalidParameterValue",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        406: "NotAcceptable",
        413: "PayloadTooLarge",
        503: "ServiceUnavailable",
        504: "Timeout",
    }.get(status, "NoApplicableCode" if status >= 500 else "InvalidRequest")


def body(status: int, detail: str, code: str | None = None) -> dict:
    code = code or _default_code(status)
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else code
    return {
        "type": f"https://onemap.example.org/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "description": detail,
    }


def response(status: int, detail: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body(status, detail, code), status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    if exc.extra:
        document = {**exc.extra, **body(exc.status, exc.detail, exc.code)}
        return JSONResponse(document, status_code=exc.status, media_type=MEDIA_TYPE, headers=exc.headers)
    return response(exc.status, exc.detail, exc.code, exc.headers)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail in (None, "", "Not Found"):
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return response(exc.status_code, str(detail), headers=getattr(exc, "headers", None))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    unavailable = store_unavailable(exc)
    if unavailable is not None:
        # the database restarting or a statement over its timeout: the client may retry
        LOG.warning("store unavailable on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0][:200])
        return response(*unavailable, headers={"Retry-After": RETRY_AFTER})
    # The trace goes to the log for the operator, never to the client.
    LOG.exception("unhandled error on %s %s", request.method, request.url.path)
    return response(500, "internal error; the request was logged for the operators", "NoApplicableCode")


RETRY_AFTER = "5"


def store_unavailable(exc: BaseException) -> tuple[int, str] | None:
    """(status, detail) when `exc` means the store cannot answer now, rather than a bug.

    A connection refused, dropped or not to be had from the pool is a 503; a statement stopped
    by its timeout (PostgreSQL's statement_timeout, the GeoPackage's progress handler) a 504.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeout

    original = getattr(exc, "orig", None) or exc
    text = str(original).lower()
    timed_out = "statement timeout" in text or "canceling statement" in text or text.strip() == "interrupted"
    if timed_out:
        return 504, "the query took longer than the store allows; narrow it (bbox, filter, limit) or retry later"
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)) or type(original).__name__ in (
        "OperationalError", "InterfaceError"
    ):
        return 503, "the city store is unavailable right now (restarting or overloaded); retry shortly"
    return None


HANDLERS = {Problem: on_problem, HTTPException: on_http_exception, Exception: on_unexpected}
