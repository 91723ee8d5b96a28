"""What a role's QGIS project holds: the layers it may see, grouped, each with a simple style.

The plan is plain JSON, handed to `writer.py` (run by Debian's python3, where QGIS's bindings
live), so nothing here imports QGIS. Which layers: every published layer the role may read as
features (right masked or full) becomes an OGC API - Features layer for analysis and is drawn in
the OneMap vector tiles for display; every indicator the role may aggregate whose heatmap tileset
the server offers becomes a heatmap layer. Styles follow the layer files (`style:` paint), the
same colours as the wall and the MapLibre styles.
"""

from __future__ import annotations

from urllib.parse import quote

import json
import urllib.error
import urllib.request

from gis.catalog import Catalog, GeometryType, Layer
from gis.security.roles import Policy, Right
from gis.stats.indicators import Indicators

HEATMAP_PREFIX = "h3_"
_KIND = {
    GeometryType.Point: "point",
    GeometryType.LineString: "line",
    GeometryType.Polygon: "polygon",
    GeometryType.MultiPolygon: "polygon",
}


class PlanError(RuntimeError):
    """The project cannot be planned; the message says what to do."""


def symbol(layer: Layer) -> dict:
    """A QGIS-neutral symbol description from the layer's MapLibre paint."""
    paint = dict(layer.style.paint or {})
    kind = _KIND[layer.geometry]
    if layer.style.type == "line" and kind == "polygon":
        kind = "outline"  # boundaries: drawn as lines, no fill hiding what lies under them
    colour = next(
        (paint[k] for k in ("fill-extrusion-color", "fill-color", "line-color", "circle-color") if k in paint), "#888888"
    )
    spec: dict = {
        "kind": kind,
        "width": float(paint.get("line-width", 0.8)) * 0.35,  # px to mm at 96 dpi, roughly
        "size": float(paint.get("circle-radius", 3)) * 2 * 0.35 if isinstance(paint.get("circle-radius", 3), (int, float)) else 2.0,
        "opacity": float(paint.get("fill-extrusion-opacity", paint.get("line-opacity", 1))),
    }
    if isinstance(colour, list) and colour and colour[0] == "match" and colour[1][:1] == ["get"]:
        spec["attribute"] = colour[1][1]
        spec["categories"] = [[colour[i], colour[i + 1]] for i in range(2, len(colour) - 1, 2)]
        spec["colour"] = colour[-1]
    else:
        spec["colour"] = colour if isinstance(colour, str) else "#888888"
    return spec


def plan(
    base: str, catalog: Catalog, policy: Policy, indicators: Indicators, role_name: str, title: str,
    token: str | None = None,
) -> dict:
    """`token` (a key of the role): the project reaches the server as the role, through a QGIS
    authentication configuration (Basic, the token as password: all QGIS 3.22 can send) that the
    writer exports beside the project; without it, as the public."""
    base = base.rstrip("/")
    try:
        role = policy.role(role_name)
    except KeyError as err:
        raise PlanError(str(err.args[0])) from None
    get = lambda path, missing_ok=False: _get(base, path, missing_ok, token)  # noqa: E731
    served = {c["id"] for c in get("/collections")["collections"]}
    may_read = [layer for layer in catalog.published if role.right(layer.id) >= Right.masked]
    readable = [layer for layer in may_read if layer.id in served]
    # the server lists what the caller may read; the rest needs the role's token in QGIS
    needs_token = [layer.id for layer in may_read if layer.id not in served]
    if token and needs_token:
        raise PlanError(
            f"with this token the server does not serve {', '.join(needs_token)}, which role {role.name} may read: "
            f"is it a key of role {role.name}? (`onemap keys create --role {role.name}`)"
        )
    analysis = [
        {"id": layer.id, "title": f"{layer.title_zh} {layer.title}", "symbol": symbol(layer)}
        for layer in readable
    ]
    tilejson = get("/tiles/WebMercatorQuad/tilejson.json")
    display = {
        "title": "OneMap 底图 (vector tiles)",
        "tiles": tilejson["tiles"][0],
        "minzoom": tilejson["minzoom"],
        "maxzoom": tilejson["maxzoom"],
        "style": f"{base}/styles/onemap/style.json",
    }
    heatmaps = []
    for indicator in indicators:
        if role.indicators.get(indicator.id) == Right.none or role.right(indicator.layer) < Right.aggregate:
            continue
        tileset = HEATMAP_PREFIX + indicator.id
        path = f"/collections/{quote(tileset)}/tiles/WebMercatorQuad/tilejson.json"
        heat = get(path, missing_ok=True)
        if heat is None:
            continue  # this server offers no heatmap of it
        heatmaps.append({
            "id": tileset,
            "title": f"{indicator.name_zh} {indicator.name}",
            "tiles": heat["tiles"][0],
            "minzoom": heat["minzoom"],
            "maxzoom": heat["maxzoom"],
            "style": f"{base}/collections/{quote(tileset)}/styles/default/style.json",
        })
    bounds = tilejson.get("bounds")
    return {
        "title": f"{title} ({role.name})",
        "base": base,
        "role": role.name,
        "extent": bounds,
        "needs_token": needs_token,
        "auth": {"name": f"OneMap {role.name} ({base})", "user": role.name, "token": token} if token else None,
        "groups": [
            {"name": "分析 Analysis (OGC API - Features)", "kind": "oapif", "layers": analysis},
            {"name": "热力图 Heatmaps (H3)", "kind": "tiles", "layers": heatmaps, "visible": False},
            {"name": "显示 Display (vector tiles)", "kind": "tiles", "layers": [display]},
        ],
    }


def _get(base: str, path: str, missing_ok: bool = False, token: str | None = None) -> dict | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=60) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as err:
        if missing_ok and err.code == 404:
            return None
        if err.code == 401:
            raise PlanError(f"{base}{path} refused the token (HTTP 401): is it a valid, unexpired key? (--token)") from None
        raise PlanError(f"{base}{path} answered HTTP {err.code}; is this a OneMap server? (--url)") from None
    except (urllib.error.URLError, OSError) as err:
        raise PlanError(f"could not reach {base}{path} ({err}); is OneMap serving there? (--url)") from None
