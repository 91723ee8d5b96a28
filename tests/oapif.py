"""What an OGC API - Features client does, for tests: follow rel=next links to the end."""

from __future__ import annotations


def all_items(http, collection: str, **params) -> list[dict]:
    """Every feature /collections/{id}/items returns, following rel=next links as OAPIF clients do."""
    url = f"/collections/{collection}/items"
    params = {"limit": 1000, **params}
    features, pages = [], 0
    while url:
        page = http.get(url, params=params)
        assert page.status_code == 200, page.text[:300]
        body = page.json()
        features += body["features"]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params, pages = None, pages + 1
        assert pages < 10_000
    return features
