"""The wall (/wall) at video-wall size, 3840x2160, in Debian's headless Chromium (issue 7).

    .venv/bin/python bench/wall.py [--gpkg /tmp/wallbench/onemap.gpkg] [--query '...'] [--chromium-arg ...]

Starts `onemap serve` on the scale-0.05 demo GeoPackage (built there by `onemap demo --scale 0.05`
when missing) with a memory-only tile cache, makes a wall-role key, and opens /wall with the
wall's defaults (the whole city, the cameras heatmap) in Chromium driven by Playwright
(executable /usr/bin/chromium, software WebGL as on a wall PC without a GPU; never downloads a
browser). Prints:

- time to idle, cold: a fresh server (empty tile caches) and a fresh browser context, from
  navigation to MapLibre's `idle` with every tile loaded;
- time to idle, cached: the page opened again in the same context (browser cache and server
  tile caches warm), as when a wall PC reloads;
- frame rate while moving: requestAnimationFrame deltas during a scripted flight from the overview
  to the city core at zoom 15, pitch 55 (extruded buildings), a pan and a rotation, and back;
- frame time at rest during a refresh: rAF deltas while the wall's refresh runs after a data
  version bump (the cameras layer), i.e. what a viewer sees when new data arrives;
- the machine's load average at the start and the end.

Results go to bench/results/<UTC time>/wall.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.clients.wall_browser import ARGS, CHROMIUM  # noqa: E402

ONEMAP = ROOT / ".venv" / "bin" / "onemap"
WIDTH, HEIGHT = 3840, 2160

# rAF deltas while `action` (a JS function of the map returning a promise) runs
MEASURE = """async (action) => {
    const map = window.onemapWall.map;
    const deltas = [];
    let last = performance.now(), running = true;
    const loop = (now) => { deltas.push(now - last); last = now; if (running) requestAnimationFrame(loop); };
    requestAnimationFrame((now) => { last = now; requestAnimationFrame(loop); });
    const started = performance.now();
    await (new Function('map', 'wall', 'return (' + action + ')(map, wall)'))(map, window.onemapWall);
    running = false;
    return {deltas, seconds: (performance.now() - started) / 1000};
}"""

FLIGHT = """async (map) => {
    const moved = () => new Promise((done) => map.once('moveend', done));
    const start = {center: map.getCenter(), zoom: map.getZoom(), pitch: map.getPitch(), bearing: map.getBearing()};
    const core = window.__core;
    map.flyTo({center: core, zoom: 15, pitch: 55, bearing: 30, duration: 4000, essential: true}); await moved();
    map.panBy([800, 300], {duration: 2000}); await moved();
    map.easeTo({bearing: 120, duration: 2000}); await moved();
    map.flyTo(Object.assign({duration: 4000, essential: true}, start)); await moved();
}"""

REFRESH = """async (map, wall) => {
    const before = wall.refreshes;
    await wall.refresh();
    if (wall.refreshes === before) throw new Error('the refresh failed');
    // the new tiles load and draw (polled: MapLibre need not emit another `idle` after setTiles), then a
    // moment at rest
    const until = performance.now() + 60000;
    do await new Promise((done) => setTimeout(done, 100));
    while (!(map.loaded() && map.areTilesLoaded() && !map.isMoving()) && performance.now() < until);
    await new Promise((done) => setTimeout(done, 1500));
}"""

WAIT_IDLE = """() => new Promise((done) => {
    const map = window.onemapWall.map;
    if (map.loaded() && map.areTilesLoaded() && !map.isMoving()) { done(); return; }
    map.once('idle', () => done());
    map.triggerRepaint();
})"""


def say(message: str) -> None:
    print(message, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frames(result: dict) -> dict:
    deltas = result["deltas"][1:] or [0.0]
    ordered = sorted(deltas)
    return {
        "fps": round(len(deltas) / max(result["seconds"], 1e-9), 2),
        "frames": len(deltas),
        "seconds": round(result["seconds"], 2),
        "median_ms": round(statistics.median(deltas), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_ms": round(max(deltas), 1),
    }


class Server:
    def __init__(self, gpkg: Path):
        self.gpkg = gpkg
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ONEMAP_DATABASE_URL": f"gpkg:///{gpkg}",
            "ONEMAP_TILE_CACHE_DIR": "",  # memory only: every run starts cold
            "ONEMAP_ROLES_FILE": str(ROOT / "layers" / "roles" / "roles.yml"),
        }

    def ensure_city(self) -> None:
        if not self.gpkg.exists():
            self.gpkg.parent.mkdir(parents=True, exist_ok=True)
            say(f"building the scale-0.05 demo city into {self.gpkg}")
            subprocess.run([str(ONEMAP), "demo", "--scale", "0.05"], env=self.env, check=True)

    def key(self) -> str:
        done = subprocess.run(
            [str(ONEMAP), "keys", "create", "--subject", "bench-wall", "--role", "wall", "--days", "1"],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return next(w for w in done.stdout.split() if w.startswith("om_"))

    def bump(self, layer: str) -> None:
        """A new data version of `layer`, as an import or an edit makes."""
        from gis.settings import DatabaseSettings, ServerSettings, Settings
        from gis.storage.store import Store

        store = Store.open(Settings(DatabaseSettings(database_url=f"gpkg:///{self.gpkg}"), ServerSettings()))
        with store.engine.begin() as conn:
            store._refresh_meta(conn, layer, bump=True)
        store.engine.dispose()

    def __enter__(self) -> "Server":
        self.process = subprocess.Popen(
            [str(ONEMAP), "serve", "--host", "127.0.0.1", "--port", str(self.port)], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.process.kill()
        raise RuntimeError("onemap serve did not become ready in 120 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def city_core(url: str) -> list[float]:
    import h3

    groups = httpx.get(f"{url}/stats", params={"indicator": "floor_area", "by": "h3", "res": 8}, timeout=60).json()["groups"]
    lat, lon = h3.cell_to_latlng(max(groups, key=lambda g: (g["value"], g["key"]))["key"])
    return [lon, lat]


def open_wall(context, url: str) -> tuple[object, float, list[str]]:
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    started = time.monotonic()
    page.goto(url)
    page.wait_for_function("window.onemapWall && window.onemapWall.ready", timeout=300_000)
    page.evaluate(WAIT_IDLE)
    return page, time.monotonic() - started, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpkg", type=Path, default=Path("/tmp/wallbench/onemap.gpkg"))
    parser.add_argument("--query", default="heatmap=h3_cameras&kiosk=1&refresh=0", help="wall URL parameters besides the token")
    parser.add_argument("--chromium-arg", action="append", default=None, help="Chromium flags instead of the tests' own")
    parser.add_argument("--shot", type=Path, default=None, help="save a screenshot of the idle wall here")
    options = parser.parse_args()

    args = options.chromium_arg if options.chromium_arg is not None else ARGS
    server = Server(options.gpkg.resolve())
    server.ensure_city()
    token = server.key()
    figures: dict = {"load_start": load(), "query": options.query, "chromium_args": args, "size": [WIDTH, HEIGHT]}
    say(f"load average {figures['load_start']}; chromium {' '.join(args)}")
    with server, sync_playwright() as playwright:
        url = f"{server.url}/wall?{options.query}&token={token}"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        page, figures["idle_cold_s"], problems = open_wall(context, url)
        say(f"time to idle, cold:   {figures['idle_cold_s']:.1f} s")
        page.close()
        page, figures["idle_cached_s"], problems = open_wall(context, url)
        say(f"time to idle, cached: {figures['idle_cached_s']:.1f} s")
        figures["pixel_ratio"] = page.evaluate("window.onemapWall.map.getPixelRatio()")
        figures["canvas"] = page.evaluate("[window.onemapWall.map.getCanvas().width, window.onemapWall.map.getCanvas().height]")
        if options.shot:
            page.screenshot(path=str(options.shot))
        page.evaluate("(core) => { window.__core = core; }", city_core(server.url))
        figures["moving"] = frames(page.evaluate(MEASURE, FLIGHT))
        say(f"moving (fly to the core at z15 pitch 55, pan, rotate, fly back): {json.dumps(figures['moving'])}")
        page.evaluate(WAIT_IDLE)
        server.bump("cameras")
        time.sleep(2.5)  # the tile service re-reads data versions once a second
        say("data version bumped; refreshing")
        figures["refresh"] = frames(page.evaluate(MEASURE, REFRESH))
        say(f"at rest during a refresh (new cameras version): {json.dumps(figures['refresh'])}")
        figures["console_errors"] = problems
        browser.close()
    figures["load_end"] = load()
    say(f"load average {figures['load_end']}; pixel ratio {figures['pixel_ratio']}, canvas {figures['canvas']}")
    if problems:
        say(f"console errors: {problems[:5]}")
    out = ROOT / "bench" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    (out / "wall.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    say(f"results: {out / 'wall.json'}")


if __name__ == "__main__":
    main()
