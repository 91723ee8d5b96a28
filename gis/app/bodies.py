"""Request bodies read with a size bound: every route that takes a body reads it here.

The declared Content-Length is refused up front; a body without one (chunked) is counted as it
streams, so an oversized upload costs at most the bound in memory.
"""

from __future__ import annotations

import json

from starlette.requests import Request

from gis.app.problems import Problem

MAX_BODY = 1_000_000


async def read_limited(request: Request, limit: int, too_big: str) -> bytes:
    """The body, or a 413 whose detail is `too_big`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(413, too_big)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise Problem(413, too_big)
    return raw


async def json_object(request: Request, limit: int = MAX_BODY) -> dict:
    """The body as a JSON object (an empty body is `{}`): the questions of /stats and /processes."""
    raw = await read_limited(request, limit, f"request body over {limit} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise Problem(400, "the request body is not JSON") from None
    except RecursionError:
        raise Problem(400, "the request body nests too deeply to be a stats question") from None
    if not isinstance(body, dict):
        raise Problem(400, "the request body must be a JSON object")
    return body
