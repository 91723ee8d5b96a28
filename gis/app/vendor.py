"""Browser assets of pygeoapi's HTML pages served by OneMap itself, not by public CDNs.

Command centres run on intranets: the Features API's HTML pages would otherwise load Leaflet,
Bootstrap and Swagger UI from unpkg/jsdelivr and render broken. The packages come from the npm
registry at set-up (package.json); pages are rewritten so each CDN URL points at `/vendor/`.
"""

from __future__ import annotations

import re

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gis.settings import REPO_ROOT

NODE_MODULES = REPO_ROOT / "node_modules"
# the packages the Features pages use; the rest of pygeoapi's templates (coverages, processes
# UIs) are pages OneMap does not serve
VENDORED = ("leaflet", "leaflet.markercluster", "bootstrap", "swagger-ui-dist")
_CDN = re.compile(
    r"https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/(?P<package>" + "|".join(map(re.escape, VENDORED)) + r")(?:@[^/\"']+)?/"
)


# Not loaded at all: shims for Internet Explorer 8 and older (no wall or desk runs those), and
# pygeoapi's image-overlay plugin for map collections, which OneMap does not serve (not on npm)
_DROPPED = re.compile(
    r"<!--\[if lt IE 9\]>.*?<!\[endif\]-->|<script src=\"https://unpkg\.com/leaflet-imageoverlay-ogcapi[^\"]*\"></script>",
    re.DOTALL,
)


def localise(html: str, base: str = "") -> str:
    """Point every vendored CDN URL in a page at OneMap's own copy."""
    return _CDN.sub(lambda m: f"{base}/vendor/{m['package']}/", _DROPPED.sub("", html))


def routes() -> list[Mount]:
    present = [name for name in VENDORED if (NODE_MODULES / name).is_dir()]
    return [Mount(f"/vendor/{name}", StaticFiles(directory=NODE_MODULES / name), name=f"vendor-{name}") for name in present]
