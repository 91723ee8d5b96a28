"""What a person's browser asks for: HTML or not (as pygeoapi decides it), and in which language
(`?lang=zh|en`, else Accept-Language, else Chinese)."""

from __future__ import annotations

from pygeoapi.formats import FORMAT_TYPES
from pygeoapi.util import get_choice_from_headers
from starlette.requests import Request

from gis.app.problems import Problem

LANGUAGES = ("zh", "en")
DEFAULT = "zh"  # the city's own language: a browser that states no preference reads Chinese


def language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked is not None:
        # pygeoapi's own links say zh-CN / en-US: the primary subtag decides
        primary = asked.strip().split("-")[0].split("_")[0].lower()
        if primary not in LANGUAGES:
            raise Problem(400, f"lang must be zh or en, got {asked[:20]!r}")
        return primary
    return from_accept_language(request.headers.get("accept-language", ""))


def from_accept_language(header: str) -> str:
    best, best_q = DEFAULT, 0.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().split("-")[0].lower()
        # equal weights: the earlier tag wins, as the browser listed them in order of preference
        if primary in LANGUAGES and q > best_q and q > 0:
            best, best_q = primary, q
    return best


def asks_for_html(request: Request) -> bool:
    """pygeoapi's rule (APIRequest._get_format): `f` decides; else the first Accept type it knows.

    Decided here, before pygeoapi parses the request: its locale matching fails on a bare
    `lang=zh` (babel knows no zh_CN locale object), which the front page must accept.
    """
    f = request.query_params.get("f")
    if f is not None and f.strip():
        return f.strip() == "html"
    choices = get_choice_from_headers(dict(request.headers), "accept", all=True) or []
    known = {mime.split(";")[0]: name for name, mime in FORMAT_TYPES.items()}
    return next((known[c] for c in choices if c in known), None) == "html"
