"""The Features API's HTML pages work on an intranet: every script, stylesheet and image they
load comes from OneMap itself, never from a public CDN."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest

PAGES = ["/", "/collections", "/collections/key_places", "/collections/key_places/items", "/openapi"]
# what a browser fetches to draw the page (not <a> or rel=about links, which it only shows)
ASSET = re.compile(
    r"""<(?:script|img)\b[^>]*?\bsrc=["']([^"']+)["']|<link\b(?=[^>]*\brel=["'](?:stylesheet|icon|shortcut icon)["'])[^>]*?\bhref=["']([^"']+)["']""",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.mark.parametrize("page", PAGES)
def test_every_asset_of_a_page_is_served_by_onemap(http, live_server, page):
    response = http.get(page, params={"f": "html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assets = [a or b for a, b in ASSET.findall(response.text)]
    assets = [a for a in assets if not a.startswith(("data:", "#"))]
    assert assets, "the page loads no assets: the check would prove nothing"
    for asset in assets:
        url = urljoin(f"{live_server}{page}", asset)
        assert url.startswith(live_server), f"{page} loads {asset} from outside OneMap"
        if "?f=" in url or url.rstrip("/") == live_server:
            continue  # alternate formats of the page itself
        assert http.get(url).status_code == 200, f"{page}: {asset} is not served"
