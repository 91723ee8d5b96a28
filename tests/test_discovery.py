"""Found by following links: a client that knows only the landing page reaches everything.

The crawler reads the JSON documents a generic OGC client reads (landing page, conformance,
collections, each collection, tilesets, tileset metadata, tile matrix sets, styles, processes,
the indicator registry), as the anonymous public and with staff and admin keys, on both
backends, and GETs every non-templated link that points at the server: every one must answer
2xx. Only the POST-only `execute` links of processes are left out.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.security_support import api_key, client, security_server

ROLES = ("public", "staff", "admin")
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
# the documents whose links a client follows further (paths without the query)
FOLLOWED = re.compile(
    r"^/$|^/conformance$|^/collections(/[^/]+)?$|^(/collections/[^/]+)?/tiles(/[^/]+)?$"
    r"|^/tileMatrixSets(/[^/]+)?$|^/processes(/[^/]+)?$|^/stats/indicators$|/style\.json$"
)
NOT_FOLLOWED_TYPES = ("text/html", "application/ld+json", "text/csv")


@pytest.fixture(scope="module")
def server(store):
    with security_server(store) as base:
        yield base


def _links(node):
    """Every link object in a JSON document, however deep (collections, tilesets, processes, layers)."""
    if isinstance(node, dict):
        if isinstance(node.get("href"), str):
            yield node
        for value in node.values():
            yield from _links(value)
    elif isinstance(node, list):
        for value in node:
            yield from _links(value)


def _style_urls(style: dict):
    for source in (style.get("sources") or {}).values():
        if isinstance(source.get("url"), str):
            yield {"href": source["url"], "rel": "source", "type": "application/json"}


def crawl(base: str, token: str | None) -> tuple[dict[str, int], dict[str, dict]]:
    """(status of every link reached, the followed documents by path)."""
    statuses: dict[str, int] = {}
    documents: dict[str, dict] = {}
    origin = urlsplit(base).netloc
    with client(base, token) as http, ThreadPoolExecutor(4) as pool:
        frontier = [f"{base}/"]
        while frontier:
            urls = [u for u in dict.fromkeys(frontier) if u not in statuses]
            frontier = []
            for url, response in zip(urls, pool.map(lambda u: http.get(u, headers={"Accept": "application/json"}), urls)):
                statuses[url] = response.status_code
                path = urlsplit(url).path or "/"
                content_type = response.headers.get("content-type", "")
                if response.status_code != 200 or "json" not in content_type or "ld+json" in content_type:
                    continue
                if not FOLLOWED.search(path):
                    continue
                document = response.json()
                documents[path] = document
                links = list(_links(document))
                if path.endswith("/style.json"):
                    links += list(_style_urls(document))
                for link in links:
                    href = link["href"].split("#", 1)[0]
                    if link.get("templated") or "{" in href or link.get("rel", "").endswith("/execute"):
                        continue
                    if urlsplit(href).netloc != origin:
                        continue  # the licence, the provider's site: not this server's to answer
                    if link.get("type") in NOT_FOLLOWED_TYPES and href in statuses:
                        continue
                    frontier.append(href)
    return statuses, documents


@pytest.fixture(scope="module")
def crawled(server, store):
    results = {}
    for role in ROLES:
        token = None if role == "public" else api_key(store, role, subject=f"crawler-{role}")
        results[role] = crawl(server, token)
    return results


@pytest.mark.parametrize("role", ROLES)
def test_every_link_from_the_landing_page_resolves(crawled, role):
    statuses, documents = crawled[role]
    failed = {url: status for url, status in statuses.items() if not 200 <= status < 300}
    assert not failed, f"{len(failed)} of {len(statuses)} links do not resolve for {role}: {sorted(failed.items())[:20]}"
    # the crawl reached every kind of document a client reads, so the check above covered them
    kinds = {"/", "/conformance", "/collections", "/tiles", "/tileMatrixSets", "/processes", "/stats/indicators",
             "/styles/onemap/style.json"}
    assert kinds <= set(documents), sorted(kinds - set(documents))
    assert any(re.match(r"^/collections/[^/]+/tiles/WebMercatorQuad$", p) for p in documents)
    assert any(p.startswith("/tileMatrixSets/") for p in documents)
    assert len(statuses) > 200


def _rels(document: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for link in document.get("links", []):
        found.setdefault(link["rel"], []).append(urlsplit(link["href"]).path)
    return found


@pytest.mark.parametrize("role", ROLES)
def test_tiles_are_discoverable_as_ogc_api_tiles_says(crawled, role):
    _, documents = crawled[role]
    landing = _rels(documents["/"])
    assert landing[REL + "tilesets-vector"] == ["/tiles"]
    assert landing[REL + "tiling-schemes"] == ["/tileMatrixSets"]
    assert landing["stylesheet"] == ["/styles/onemap/style.json"]
    assert landing["preview"] == ["/viewer"]  # the city's map viewer, for people
    collections = documents["/collections"]["collections"]
    tiled = [c for c in collections if REL + "tilesets-vector" in _rels(c)]
    assert tiled, "no collection links its tiles"
    for collection in tiled:
        rels, cid = _rels(collection), collection["id"]
        assert rels[REL + "tilesets-vector"] == [f"/collections/{cid}/tiles"]
        assert rels["stylesheet"] == [f"/collections/{cid}/styles/default/style.json"]
        assert f"/collections/{cid}/tiles/WebMercatorQuad/tilejson.json" in rels["describedby"]
        assert rels["preview"] == [f"/collections/{cid}/viewer"]
        assert _rels(documents[f"/collections/{cid}"]) == rels  # the collection's own document says the same
    # aggregate collections (an indicator's hexagons as features) have no tileset of their own
    assert all(not c["id"].startswith("agg_") for c in tiled)
    for path, document in documents.items():
        if re.match(r"^(/collections/[^/]+)?/tiles/[^/]+$", path):
            rels = _rels(document)
            assert rels[REL + "tiling-scheme"] == [f"/tileMatrixSets/{path.rsplit('/', 1)[1]}"], path
            assert [link for link in document["links"] if link["rel"] == "item" and link.get("templated")], path
            assert len(rels["stylesheet"]) == 1, path


def test_a_collection_the_role_may_not_read_has_no_links_anywhere(crawled):
    public = {urlsplit(u).path for u in crawled["public"][0]}
    admin = {urlsplit(u).path for u in crawled["admin"][0]}
    hidden = {p.split("/")[2] for p in admin - public if p.startswith("/collections/")}
    assert hidden, "the shipped roles hide some collection from the public"
    assert not any(p.startswith(f"/collections/{c}") for p in public for c in hidden)


def test_the_old_tile_matrix_set_path_is_not_linked(crawled):
    for statuses, _ in crawled.values():
        assert not [u for u in statuses if "/TileMatrixSets" in u]


def test_the_case_workflow_is_linked_for_the_roles_that_read_cases(crawled):
    for role, linked in (("public", False), ("staff", True), ("admin", True)):
        statuses, documents = crawled[role]
        assert ("/cases/workflow" in _rels(documents["/"]).get("related", [])) is linked, role
        assert any(urlsplit(u).path == "/cases/workflow" for u in statuses) is linked, role
