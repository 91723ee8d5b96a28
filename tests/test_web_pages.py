"""The front page and the map viewers over real HTTP, on both backends (gis.web).

A person's browser asking `/` for HTML gets OneMap's front page: the layers the caller's role may
read with the same count `/collections/{id}/items` reports as numberMatched for that caller, and
links to everything else; every link answers. Expected numbers come from the Features API.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.security_support import api_key, client, security_server

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


class _Page(HTMLParser):
    """The links, assets and layer rows of an HTML page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.assets: list[str] = []
        self.rows: dict[str, str] = {}  # data-layer -> data-count
        self.viewers: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.lang: str | None = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "title":
            self._in_title = True
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
            if a.get("rel") == "viewer":
                self.viewers[a["href"].split("/collections/")[1].split("/")[0]] = a["href"]
        if tag == "link" and a.get("href"):
            (self.assets if a.get("rel") in ("stylesheet", "icon") else self.hrefs).append(a["href"])
        if tag == "script" and a.get("src"):
            self.assets.append(a["src"])
        if tag == "tr" and "data-layer" in a:
            self.rows[a["data-layer"]] = a.get("data-count", "")
        if tag == "input" and a.get("id"):
            self.inputs[a["id"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def front(http: httpx.Client, **params) -> _Page:
    response = http.get("/", params=params, headers=BROWSER)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def number_matched(http: httpx.Client, layer: str) -> int:
    document = http.get(f"/collections/{layer}/items", params={"f": "json", "limit": 1}).json()
    return document["numberMatched"]


def readable(http: httpx.Client) -> set[str]:
    """The feature collections the caller may read, as /collections lists them."""
    listed = http.get("/collections", params={"f": "json"}).json()["collections"]
    return {c["id"] for c in listed if c.get("itemType") == "feature" and not c["id"].startswith("agg_")}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as c:
        yield c


# -- the page itself ---------------------------------------------------------------------------------


def test_browsers_get_the_front_page_and_clients_keep_pygeoapis_json(http):
    assert front(http).lang == "zh"  # no preference stated: the city's language
    for params, headers in (({}, {"Accept": "application/json"}), ({"f": "json"}, BROWSER), ({}, {})):
        response = http.get("/", params=params, headers=headers)
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
        assert any(link["rel"] == "service-desc" for link in response.json()["links"])


def test_front_page_in_chinese_and_english(http, repo_root):
    import yaml

    titles = yaml.safe_load((repo_root / "pygeoapi-config.yml").read_text(encoding="utf-8"))["metadata"]["identification"]["title"]
    zh, en = front(http, lang="zh"), front(http, lang="en")
    assert (zh.lang, en.lang) == ("zh", "en")
    assert zh.title.strip() == titles["zh"] and en.title.strip() == titles["en"]
    by_header = parse(http.get("/", headers={**BROWSER, "Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"}).text)
    assert by_header.lang == "en"
    by_header = parse(http.get("/", headers={**BROWSER, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text)
    assert by_header.lang == "zh"
    # each layer's title in the page's language, from /collections in that language
    body_zh = http.get("/", params={"lang": "zh"}, headers=BROWSER).text
    body_en = http.get("/", params={"lang": "en"}, headers=BROWSER).text
    assert "建筑物" in body_zh and ">Buildings<" in body_en


def test_a_bad_language_is_a_clean_400(http):
    response = http.get("/", params={"f": "html", "lang": "fr"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "lang" in response.json()["detail"]


def test_counts_are_numberMatched_of_the_public(http):
    page = front(http, lang="en")
    assert set(page.rows) == readable(http)
    for layer, count in page.rows.items():
        assert int(count) == number_matched(http, layer), layer


def test_copyable_urls_are_the_servers_own(http, live_server):
    page = front(http, lang="en")
    tileset = http.get("/tiles/WebMercatorQuad").json()
    item = next(link["href"] for link in tileset["links"] if link["rel"] == "item")
    ogc = item.split("?")[0]
    assert page.inputs["tile-template"] == ogc.replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")
    tile = http.get(page.inputs["tile-template"].format(z=12, y=1582, x=3412).removeprefix(live_server))
    assert tile.status_code in (200, 204)
    command = page.inputs["qgis-command"]
    assert command.startswith("onemap qgis-project ") and f"--url {live_server}" in command and "--role public" in command


def test_every_link_and_asset_of_the_front_page_and_viewers_answers(http, live_server):
    pages = ["/?lang=zh", "/?lang=en", "/viewer", "/viewer?lang=en"]
    pages += [urlsplit(href).path + "?" + urlsplit(href).query for href in front(http, lang="en").viewers.values()]
    assert len(pages) > 6, "no viewer links: the crawl would prove little"
    checked = set()
    for path in pages:
        response = http.get(path, headers=BROWSER)
        assert response.status_code == 200, path
        page = parse(response.text)
        for href in page.hrefs + page.assets:
            if href.startswith("data:"):
                continue  # the empty favicon: nothing to fetch
            url = urljoin(f"{live_server}{path}", href)
            assert url.startswith(live_server), f"{path} links outside OneMap: {href}"
            if url in checked:
                continue
            checked.add(url)
            answer = http.get(url, headers=BROWSER)
            assert 200 <= answer.status_code < 300, f"{path}: {href} answers {answer.status_code}"
    assert len(checked) > 30


def test_collection_and_items_pages_link_to_the_viewer(http, live_server):
    for path in ("/collections/key_places", "/collections/key_places/items"):
        page = parse(http.get(path, params={"f": "html"}).text)
        viewers = [h for h in page.hrefs if h.split("?")[0] == f"{live_server}/collections/key_places/viewer"]
        assert viewers, f"{path} has no link to its viewer"
        assert http.get(viewers[0]).status_code == 200
    # aggregate collections have no tiles of their own, so no viewer
    aggregate = next(c["id"] for c in http.get("/collections").json()["collections"] if c["id"].startswith("agg_"))
    page = http.get(f"/collections/{aggregate}", params={"f": "html"}).text
    assert "/viewer" not in page
    assert http.get(f"/collections/{aggregate}/viewer").status_code == 404


def test_viewers_of_unknown_collections_are_404_problems(http):
    for collection in ("nowhere", "population"):  # population: aggregates only, never features
        response = http.get(f"/collections/{collection}/viewer")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 404


def test_viewer_pages_name_their_style_and_tiles(http):
    page = http.get("/collections/buildings/viewer", params={"lang": "en"}).text
    assert '"style": "/collections/buildings/styles/default/style.json"' in page
    assert '"tilejson": "/collections/buildings/tiles/WebMercatorQuad/tilejson.json"' in page
    assert '"style": "/styles/onemap/style.json"' in http.get("/viewer").text


# -- roles: the shipped policy, real keys -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(store):
    with security_server(store) as base:
        yield base


def test_a_layer_hidden_from_the_public_is_absent(shipped):
    with client(shipped) as public:
        page = front(public, lang="en")
        assert "cameras" not in page.rows and "population" not in page.rows
        assert not [h for h in page.hrefs if "/collections/cameras" in h or "/collections/population" in h]
        assert set(page.rows) == readable(public)
        for layer, count in page.rows.items():
            assert int(count) == number_matched(public, layer), layer
        assert public.get("/collections/cameras/viewer").status_code == 404


def test_staff_counts_are_their_own_numberMatched(shipped, store):
    with client(shipped, api_key(store, "staff", "web-staff")) as staff:
        page = front(staff, lang="en")
        assert "cameras" in page.rows and page.viewers.get("cameras")
        assert set(page.rows) == readable(staff)
        for layer, count in page.rows.items():
            assert int(count) == number_matched(staff, layer), layer
        street = staff.get("/collections/buildings/items", params={"limit": 1}).json()["features"][0]["properties"]["street"]
        whole = int(page.rows["buildings"])
        assert "--token KEY" in page.inputs["qgis-command"] and "--role staff" in page.inputs["qgis-command"]
    # a key limited to one street counts that street's rows, exactly as its /items does
    with client(shipped, api_key(store, "staff", "web-staff-street", streets=[street])) as limited:
        page = front(limited, lang="en")
        assert int(page.rows["buildings"]) == number_matched(limited, "buildings") < whole
        for layer, count in page.rows.items():
            assert int(count) == number_matched(limited, layer), layer
