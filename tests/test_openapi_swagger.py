"""Swagger UI at /openapi?f=html works offline: Debian's Chromium opens it, every operation is
expanded, and nothing is fetched from elsewhere, nothing fails, nothing is left unresolved.

As the admin (on the shipped roles file), whose document is the largest: every family of routes,
the Part 4 edits with their bodies, every collection. The key travels as the Authorization header
of every request the browser makes, as a proxy in front of an intranet's browsers would add it.
On the embedded store only: the document does not depend on the backend (test_openapi_coverage and
test_hostile_schemathesis read it on both), and a walk through every operation takes two minutes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.security_support import api_key, security_server

CHROMIUM = "/usr/bin/chromium"
UNRESOLVED = ("Could not resolve reference", "Resolver error", "could not resolve pointer")


@pytest.fixture(scope="module")
def admin_server(built_stores):
    store, _ = built_stores("geopackage")
    with security_server(store) as url:
        yield url, api_key(store, "admin", subject="swagger-ui")


def test_swagger_ui_expands_every_operation_offline(admin_server):
    url, key = admin_server
    origin = urlsplit(url).netloc
    requests: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-dev-shm-usage"])
        try:
            context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {key}"},
                                          viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url}: HTTP {r.status}"))
            page.on("pageerror", lambda err: failed.append(f"page error: {err}"))
            page.goto(f"{url}/openapi?f=html", wait_until="load")
            page.wait_for_selector(".opblock-summary", timeout=120_000)
            expected = page.evaluate(_OPERATIONS)
            opened = page.evaluate(_EXPAND_ALL)
            unresolved = page.evaluate(_RESOLVE_ALL)
            page.wait_for_load_state("networkidle")
            text = page.inner_text("body").lower()
            shown_errors = page.locator(".errors-wrapper").count()
            errors = page.evaluate("() => window.ui.errSelectors.allErrors().toJS().map((e) => `${e.source}: ${e.message}`)")
        finally:
            browser.close()
    assert requests and all(urlsplit(r).scheme in ("data", "blob") or urlsplit(r).netloc == origin for r in requests), (
        [r for r in requests if urlsplit(r).netloc != origin][:10]
    )
    assert not failed, failed[:10]
    assert expected > 300, f"only {expected} operations in the document"
    assert len(opened["ids"]) == expected, f"{len(opened['ids'])} of {expected} operations expanded"
    assert not opened["shut"], f"operations that did not open: {opened['shut'][:5]}"
    assert not unresolved, f"operations Swagger UI did not resolve: {unresolved[:5]}"
    assert not [phrase for phrase in UNRESOLVED if phrase.lower() in text], "resolver errors on the page"
    assert shown_errors == 0, "Swagger UI shows errors"
    assert not errors, errors[:10]
    assert any("getStats" in op_id for op_id in opened["ids"])  # OneMap's own routes are there


_OPERATIONS = """() => window.ui.specSelectors.operations().size"""
# Swagger UI 5 keeps only the operations near the viewport in the page. Down the page, a screenful at
# a time, every operation there is opened (its summary's control takes the click, as a person's click
# on the summary lands on it; all of a screenful in one go, so Swagger UI resolves them in one batch),
# must then be shown open, and is closed again.
_EXPAND_ALL = """async () => {
  const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
  const ids = new Set(), shut = [];
  const shown = (id) => window.ui.layoutSelectors.isShown(id.split('-'), false);
  for (let rounds = 0; rounds < 20000; rounds++) {
    const fresh = [...document.querySelectorAll('.opblock')].filter((block) => block.id && !ids.has(block.id));
    if (fresh.length) {
      for (const block of fresh) { ids.add(block.id); block.querySelector('.opblock-summary-control').click(); }
      await frame(); await frame();
      fresh.filter((block) => !shown(block.id)).forEach((block) => shut.push(block.id));
      // closed again, so the page stays short (one pushed out of view is closed as its click would)
      for (const block of fresh) {
        const open = document.getElementById(block.id);
        if (open && open.classList.contains('is-open')) open.querySelector('.opblock-summary-control').click();
        else window.ui.layoutActions.show(block.id.split('-'), false);
      }
      await frame();
      continue;
    }
    if (window.scrollY + window.innerHeight >= document.body.scrollHeight - 2) break;
    window.scrollBy(0, window.innerHeight * 0.9);
    await frame();
  }
  return {ids: [...ids], shut};
}"""
# An operation opened asks Swagger UI to resolve its references, in batches a newer request makes
# stale: clicked at this pace most batches are dropped. Asked again in one batch, as each expansion
# asks (specActions.requestResolvedSubtree), and awaited: every reference of every operation
# resolved, or the resolver's error on the page.
_RESOLVE_ALL = """async () => {
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const spec = window.ui.specSelectors, keys = [];
  spec.operations().forEach((op) => keys.push(['paths', op.get('path'), op.get('method')]));
  keys.forEach((key) => window.ui.specActions.requestResolvedSubtree(key));
  for (let waited = 0; waited < 2400 && keys.some((key) => spec.specResolvedSubtree(key) === undefined); waited++) await sleep(100);
  window.scrollTo(0, 0);
  await sleep(200);
  return keys.filter((key) => spec.specResolvedSubtree(key) === undefined).map((key) => key.join(' '));
}"""
