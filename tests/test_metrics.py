"""/metrics speaks Prometheus: requests by route template and status, latency histograms, the
tile cache's hits and misses, the database pool.

Read with prometheus_client's own text parser, as a Prometheus server would; each check compares
a scrape before and after requests the test makes itself, so the expected deltas are known.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

TILE_ROUTE = "/collections/{collection_id}/tiles/{tms}/{z}/{y}/{x}"


def fetch(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    status, body, headers = fetch(f"{base}/metrics")
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200 and headers["content-type"].startswith("text/plain; version="), (status, body[:200])
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_and_status(live_server):
    before = scrape(live_server)
    for _ in range(3):
        assert fetch(f"{live_server}/collections/cameras")[0] == 200
    assert fetch(f"{live_server}/collections/no_such_layer")[0] == 404
    assert fetch(f"{live_server}/no/such/path")[0] == 404
    after = scrape(live_server)
    route = "/collections/{collection_id}"
    ok = dict(route=route, method="GET", status="200")
    assert value(after, "onemap_http_requests_total", **ok) - value(before, "onemap_http_requests_total", **ok) == 3
    missing = dict(route=route, method="GET", status="404")
    assert value(after, "onemap_http_requests_total", **missing) - value(before, "onemap_http_requests_total", **missing) == 1
    # unknown paths share one label, so a scanner cannot blow up the series count
    other = dict(route="(unmatched)", method="GET", status="404")
    assert value(after, "onemap_http_requests_total", **other) - value(before, "onemap_http_requests_total", **other) == 1
    timed = dict(route=route, method="GET")
    count = "onemap_http_request_duration_seconds_count"
    assert value(after, count, **timed) - value(before, count, **timed) == 4
    inf = dict(route=route, method="GET", le="+Inf")
    assert value(after, "onemap_http_request_duration_seconds_bucket", **inf) == value(after, count, **timed)
    assert value(after, "onemap_http_request_duration_seconds_sum", **timed) > value(before, "onemap_http_request_duration_seconds_sum", **timed)


def test_tile_cache_hits_and_misses(live_server):
    # a tile no other test asks for: the first request renders it, the second is a cache hit
    url = f"{live_server}/collections/districts/tiles/WebMercatorQuad/3/3/6"
    before = scrape(live_server)
    assert fetch(url)[0] in (200, 204)
    middle = scrape(live_server)
    assert fetch(url)[0] in (200, 204)
    after = scrape(live_server)
    assert value(middle, "onemap_tile_cache_misses_total") - value(before, "onemap_tile_cache_misses_total") == 1
    assert value(after, "onemap_tile_cache_hits_total") - value(middle, "onemap_tile_cache_hits_total") == 1
    hits, misses = value(after, "onemap_tile_cache_hits_total"), value(after, "onemap_tile_cache_misses_total")
    assert value(after, "onemap_tile_cache_hit_ratio") == hits / (hits + misses)
    # the fast path answers cached tiles before routing, and is counted under the tile route all the same
    tile = dict(route=TILE_ROUTE, method="GET")
    assert value(after, "onemap_http_request_duration_seconds_count", **tile) - value(
        before, "onemap_http_request_duration_seconds_count", **tile) == 2


def test_database_pool_use(live_server, live_server_settings):
    samples = scrape(live_server)
    assert value(samples, "onemap_db_pool_size") == live_server_settings.database.pool_size
    assert 0 <= value(samples, "onemap_db_pool_checked_out") <= 2 * live_server_settings.database.pool_size
    assert ("onemap_db_pool_overflow", ()) in samples
