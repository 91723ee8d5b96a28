"""The bare-starlette bound: a tiny app answering every GET with the same 30 KB body.

Served by the same uvicorn, worker count and HTTP stack as OneMap; it is the ceiling for any
starlette/uvicorn tile server on this machine (no lookup, no cache, no database).
"""

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = bytes(range(256)) * 120  # 30,720 bytes
HEADERS = {"cache-control": "public, max-age=0, must-revalidate", "access-control-allow-origin": "*"}


async def tile(request):
    return Response(BODY, media_type="application/vnd.mapbox-vector-tile", headers=HEADERS)


app = Starlette(routes=[Route("/{path:path}", tile)])
