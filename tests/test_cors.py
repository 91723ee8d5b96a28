"""CORS over real HTTP, on both backends: what a browser page on another origin needs of every
answer (the headers a fetch() may read) and of its preflights (the methods and headers it may send).

Starts at the landing page and follows links, as a page on another origin would; every request
carries that page's Origin.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security_support import security_server
from tests.tiles_support import assert_problem

ORIGIN = "http://portal.city.example:8080"
EXPOSED = {"etag", "link", "location", "content-crs", "onemap-data-version", "onemap-thinned", "retry-after", "content-encoding"}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60, headers={"Origin": ORIGIN}) as client:
        yield client


def link(document: dict, rel: str, kind: str | None = None) -> str | None:
    for item in document.get("links", []):
        if item.get("rel") == rel and (kind is None or (item.get("type") or "").startswith(kind)):
            return item["href"]
    return None


def readable(response: httpx.Response) -> None:
    """What a browser checks before it hands the answer to the page's script."""
    assert response.headers.get("access-control-allow-origin") == "*", (response.url, dict(response.headers))
    assert "access-control-allow-credentials" not in response.headers, "keys never travel in cookies"
    exposed = {h.strip().lower() for h in response.headers.get("access-control-expose-headers", "").split(",")}
    assert EXPOSED <= exposed, (response.url, exposed)


@pytest.fixture(scope="module")
def walked(http):
    """{kind: URL} found by following links from the landing page."""
    landing = http.get("/", params={"f": "json"})
    assert landing.status_code == 200
    found = {"landing": str(landing.url)}
    collections = http.get(link(landing.json(), "data")).json()
    found["collections"] = link(landing.json(), "data")
    buildings = next(c for c in collections["collections"] if c["id"] == "buildings")
    items = link(buildings, "items", "application/geo+json")
    found["items"] = items
    feature = http.get(items, params={"limit": 1}).json()["features"][0]
    found["item"] = f"{items.split('?')[0]}/{feature['id']}"
    found["style"] = link(landing.json(), "stylesheet") or "/styles/onemap/style.json"
    style = http.get(found["style"]).json()
    source = next(s for s in style["sources"].values() if s.get("type") == "vector" and "url" in s)
    found["tilejson"] = source["url"]
    tilejson = http.get(source["url"]).json()
    found["tiles"] = tilejson["tiles"][0]
    found["center"] = tilejson["center"]
    indicators = http.get("/stats/indicators").json()["indicators"]
    found["stats"] = f"/stats?indicator={indicators[0]['id']}"
    return found


@pytest.mark.parametrize("kind", ["landing", "collections", "items", "item", "style", "tilejson", "stats"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_answer_a_page_reads_carries_cors(http, walked, kind, method):
    response = http.request(method, walked[kind])
    assert response.status_code == 200, (walked[kind], response.text[:300])
    readable(response)


def test_tiles_carry_cors_on_a_miss_and_on_a_hit(http, walked):
    from tests.tiles_support import tile_of

    lon, lat, _ = walked["center"]
    x, y = tile_of(lon, lat, 14)
    url = walked["tiles"].replace("{z}", "14").replace("{x}", str(x)).replace("{y}", str(y))
    miss = http.get(url)
    hit = http.get(url)  # answered by the tiles' fast path, before routing
    head = http.head(url)
    for response in (miss, hit, head):
        assert response.status_code in (200, 204)
        readable(response)
    assert miss.headers.get("access-control-allow-origin") == "*"
    assert hit.headers.get_list("access-control-allow-origin") == ["*"], "one mechanism: the tile path adds none itself"


def test_problems_carry_cors_too(http, walked):
    unknown = http.get("/collections/no_such_layer/items")
    assert_problem(unknown, 404)
    readable(unknown)
    bad = http.get("/collections", headers={"Authorization": "Bearer om_not_a_real_key"})
    assert_problem(bad, 401)
    readable(bad)  # answered by authentication, before any route
    long = http.get("/collections", params={"bbox": "1," * 5000})
    assert_problem(long, 414)
    readable(long)
    missing_tile = http.get("/tiles/WebMercatorQuad/40/0/0")
    assert_problem(missing_tile, (400, 404))
    readable(missing_tile)


def preflight(http, path: str, method: str, headers: str | None = None) -> httpx.Response:
    extra = {"Access-Control-Request-Method": method}
    if headers:
        extra["Access-Control-Request-Headers"] = headers
    return http.options(path, headers=extra)


def methods_of(response) -> set[str]:
    return {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}


def test_a_preflight_lists_the_methods_of_the_route_it_asks_about(http, walked):
    items_path = httpx.URL(walked["items"]).path
    item_path = httpx.URL(walked["item"]).path
    get = preflight(http, items_path, "GET", "authorization")
    assert get.status_code == 204 and get.headers["access-control-allow-origin"] == "*"
    assert {"GET", "HEAD", "POST"} <= methods_of(get) and "PATCH" not in methods_of(get)
    edit = preflight(http, item_path, "PATCH", "authorization, if-match, content-type")
    assert edit.status_code == 204, edit.text
    assert {"GET", "HEAD", "PUT", "PATCH", "DELETE"} <= methods_of(edit) and "POST" not in methods_of(edit)
    allowed = {h.strip().lower() for h in edit.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "if-match", "if-none-match", "content-type", "content-crs", "accept-crs"} <= allowed
    assert int(edit.headers["access-control-max-age"]) > 0
    tile = preflight(http, httpx.URL(walked["tiles"].replace("{z}/{y}/{x}", "14/1/1")).path, "GET", "if-none-match")
    assert tile.status_code == 204 and methods_of(tile) == {"GET", "HEAD"}
    style = preflight(http, httpx.URL(walked["style"]).path, "GET")
    assert style.status_code == 204 and methods_of(style) == {"GET", "HEAD"}
    assert_problem(preflight(http, "/no/such/route", "GET"), 404)


def test_a_preflight_needs_no_key_but_the_request_after_it_does(http, walked):
    item_path = httpx.URL(walked["item"]).path
    assert preflight(http, item_path, "PUT", "authorization, if-match, content-type").status_code == 204
    refused = http.put(item_path, json={}, headers={"Content-Type": "application/geo+json", "If-Match": '"x"'})
    assert refused.status_code in (401, 403, 405), refused.text[:300]
    readable(refused)


def test_a_plain_options_still_reaches_the_edit_routes(http, walked):
    response = http.options(httpx.URL(walked["item"]).path)  # no Access-Control-Request-Method: not a preflight
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}, "the public may only read"
    readable(response)


def test_a_restricted_list_echoes_allowed_origins_only(store):
    with security_server(store, cors_origins=[ORIGIN, "https://wall.city.example"]) as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            allowed = http.get("/collections", headers={"Origin": ORIGIN})
            assert allowed.headers["access-control-allow-origin"] == ORIGIN
            assert "origin" in allowed.headers["vary"].lower()
            other = http.get("/collections", headers={"Origin": "http://evil.example"})
            assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
            assert "origin" in other.headers["vary"].lower(), "caches must not hand one origin's answer to another"
            none = http.get("/collections")
            assert "access-control-allow-origin" not in none.headers and "origin" in none.headers["vary"].lower()
            ok = http.options("/collections", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
            assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ORIGIN
            refused = http.options("/collections", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
            assert_problem(refused, 403)
            assert "access-control-allow-origin" not in refused.headers


def test_origins_come_from_the_environment_as_a_list(monkeypatch):
    from gis.settings import ServerSettings

    monkeypatch.setenv("ONEMAP_CORS_ORIGINS", "https://portal.city.example, https://wall.city.example/")
    assert ServerSettings().cors_origins == ["https://portal.city.example", "https://wall.city.example"]
    monkeypatch.delenv("ONEMAP_CORS_ORIGINS")
    assert ServerSettings(_env_file=None).cors_origins == ["*"]
