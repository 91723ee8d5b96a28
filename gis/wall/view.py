"""What a wall shows, from its URL: layers, heatmap, camera, theme, refresh, kiosk, language.

The URL is the wall's whole configuration, so a screen that cannot log in or be clicked is set
up by the address alone and `/wall/embed` can hand the same view to an iframe. Parameters are
checked here, on the server: a typo answers 400 naming the parameter, not a blank wall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from gis.app.problems import Problem

DEFAULT_LAYERS = ("districts", "streets", "grids", "buildings", "key_places", "cameras")
THEMES = ("dark", "light")
LANGUAGES = ("zh", "en")
MIN_REFRESH, MAX_REFRESH, DEFAULT_REFRESH = 5, 86_400, 60
KNOWN = {"layers", "heatmap", "center", "zoom", "bearing", "pitch", "theme", "refresh", "kiosk", "lang", "kpis", "token"}


@dataclass
class WallView:
    layers: list[str]
    heatmap: str | None = None
    center: tuple[float, float] | None = None  # None: the city's middle (from the tiles' bounds)
    zoom: float | None = None  # None: fit the city
    bearing: float = 0.0
    pitch: float = 0.0
    theme: str = "dark"
    refresh: int = DEFAULT_REFRESH  # seconds; 0 = never
    kiosk: bool = False
    lang: str = "zh"
    kpis: list[str] | None = None  # None: every indicator the viewer may see
    token: str | None = field(default=None, repr=False)

    def query(self, with_token: bool = True) -> str:
        """The URL query that reproduces this view (defaults left out)."""
        params: dict[str, str] = {"layers": ",".join(self.layers)}
        if self.heatmap:
            params["heatmap"] = self.heatmap
        if self.center is not None:
            params["center"] = f"{_num(self.center[0], 6)},{_num(self.center[1], 6)}"
        if self.zoom is not None:
            params["zoom"] = _num(self.zoom, 2)
        if self.bearing:
            params["bearing"] = _num(self.bearing, 1)
        if self.pitch:
            params["pitch"] = _num(self.pitch, 1)
        if self.theme != "dark":
            params["theme"] = self.theme
        if self.refresh != DEFAULT_REFRESH:
            params["refresh"] = str(self.refresh)
        if self.kiosk:
            params["kiosk"] = "1"
        if self.lang != "zh":
            params["lang"] = self.lang
        if self.kpis is not None:
            params["kpis"] = ",".join(self.kpis)
        if with_token and self.token:
            params["token"] = self.token
        return urlencode(params, safe=",")

    def as_json(self) -> dict:
        return {
            "layers": self.layers,
            "heatmap": self.heatmap,
            "center": list(self.center) if self.center else None,
            "zoom": self.zoom,
            "bearing": self.bearing,
            "pitch": self.pitch,
            "theme": self.theme,
            "refresh": self.refresh,
            "kiosk": self.kiosk,
            "lang": self.lang,
            "kpis": self.kpis,
            "token": self.token,
        }


def parse(params: dict[str, str], layers: list[str], heatmaps: list[str]) -> WallView:
    """The view a query asks for; `layers`/`heatmaps` are what this viewer may show."""
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise Problem(400, f"unknown wall parameter(s) {', '.join(unknown)[:200]}; the wall takes {', '.join(sorted(KNOWN))}")
    chosen = _list(params, "layers") if "layers" in params else [l for l in DEFAULT_LAYERS if l in layers]
    bad = [name for name in chosen if name not in layers]
    if bad:
        raise Problem(400, f"layers: no layer {', '.join(bad)[:200]} to show; choose from {', '.join(layers)}")
    heatmap = params.get("heatmap") or None
    if heatmap is not None and heatmap not in heatmaps:
        offered = ", ".join(heatmaps) if heatmaps else "none are available"
        raise Problem(400, f"heatmap: no heatmap {heatmap[:60]!r}; choose from {offered}")
    view = WallView(layers=chosen, heatmap=heatmap)
    if "center" in params:
        parts = params["center"].split(",")
        if len(parts) != 2:
            raise Problem(400, f"center must be lon,lat in degrees, got {params['center'][:60]!r}")
        lon, lat = (_float(params, "center", p) for p in parts)
        if not (-180 <= lon <= 180 and -85 <= lat <= 85):
            raise Problem(400, "center must be lon,lat with lon in -180..180 and lat in -85..85")
        view.center = (lon, lat)
    if "zoom" in params:
        view.zoom = _bounded(params, "zoom", 0, 22)
    if "bearing" in params:
        view.bearing = _bounded(params, "bearing", -360, 360)
    if "pitch" in params:
        view.pitch = _bounded(params, "pitch", 0, 85)
    view.theme = _choice(params, "theme", THEMES, "dark")
    view.lang = _choice(params, "lang", LANGUAGES, "zh")
    if "refresh" in params:
        raw = params["refresh"]
        if not raw.isdigit() or not (int(raw) == 0 or MIN_REFRESH <= int(raw) <= MAX_REFRESH):
            raise Problem(400, f"refresh must be seconds between {MIN_REFRESH} and {MAX_REFRESH}, or 0 for never; got {raw[:20]!r}")
        view.refresh = int(raw)
    if "kiosk" in params:
        raw = params["kiosk"].lower()
        if raw not in ("0", "1", "true", "false", "yes", "no", ""):
            raise Problem(400, f"kiosk must be 1 or 0, got {params['kiosk'][:20]!r}")
        view.kiosk = raw in ("1", "true", "yes", "")
    if "kpis" in params:
        view.kpis = _list(params, "kpis")
    view.token = params.get("token") or None
    return view


def _list(params: dict[str, str], name: str) -> list[str]:
    return [part.strip() for part in params[name].split(",") if part.strip()]


def _float(params: dict[str, str], name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Problem(400, f"{name} must be a number, got {raw[:30]!r}") from None
    if not math.isfinite(value):
        raise Problem(400, f"{name} must be a finite number")
    return value


def _bounded(params: dict[str, str], name: str, low: float, high: float) -> float:
    value = _float(params, name, params[name])
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def _choice(params: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(name, default)
    if value not in allowed:
        raise Problem(400, f"{name} must be one of {', '.join(allowed)}, got {value[:20]!r}")
    return value


def _num(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
