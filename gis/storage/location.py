"""Where a store lives, read from its URL alone: settings and the engines both need it, and it
needs neither (so gis.settings does not import the engine module that imports it)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse


class StoreUnavailable(RuntimeError):
    """The configured store cannot be opened; the message says what to do."""


def gpkg_path(database_url: str) -> Path:
    parsed = urlparse(database_url)
    path = parsed.path if parsed.netloc in ("", "localhost") else f"/{parsed.netloc}{parsed.path}"
    if not path or path == "/":
        raise StoreUnavailable(f"{database_url!r} names no file: use gpkg:///absolute/path.gpkg")
    return Path(path)
