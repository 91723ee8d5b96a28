"""Cost of the sealed columns (docs/security.md, "Encryption at rest"): builds the demo city into
the store given, then times population items (limit 1000) and z16 population tiles as admin.

    python bench/encryption.py DATABASE_URL SCHEMA SCALE

The store is rebuilt: give a GeoPackage path or a PostGIS database/schema of your own, never the
shared `onemap_bench`. Run it from two checkouts (PYTHONPATH=checkout) to compare before/after,
and quote the load average it prints with the numbers.
"""

import os
import statistics
import sys
import time

from gis.demo.city import build_demo
from gis.features.query import FeatureQuery, LayerQueries
from gis.security.principal import for_role, use
from gis.security.roles import Policy
from gis.settings import REPO_ROOT, DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store
from tiles.api import TileService
from tiles.engine import RenderJob
from tiles.matrix import GRIDS


def main(url: str, schema: str, scale: float) -> None:
    settings = Settings(DatabaseSettings(database_url=url, schema_name=schema),
                        ServerSettings(tile_cache_dir=None, roles_file=REPO_ROOT / "layers" / "roles" / "roles.yml"))
    store = Store.open(settings)
    started = time.perf_counter()
    counts = build_demo(store, scale=scale, seed=42)
    build = time.perf_counter() - started
    with use(for_role(Policy.load(settings.server.roles_path), "admin")):
        queries = LayerQueries(store, store.catalog["population"])
        items = []
        for i in range(15):
            started = time.perf_counter()
            page = queries.read_page(FeatureQuery(limit=1000, offset=1000 * (i % 5)))
            items.append(time.perf_counter() - started)
        assert len(page.rows) == 1000
        service = TileService(store, settings, cache_dir=None, memory_bytes=0)
        engine, grid = service.engine, GRIDS["WebMercatorQuad"]
        minx, miny, maxx, maxy = store.layer_meta("population").bbox
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        x0, y0, x1, y1 = grid.tile_range(16, (cx - 0.02, cy - 0.02, cx + 0.02, cy + 0.02))
        tiles, residents = [], 0
        for warm in (True, False):  # the first pass warms the plan caches and the page cache
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    started = time.perf_counter()
                    rendered = engine.render(engine.plan("population", grid, 16, x, y), RenderJob())
                    if not warm:
                        tiles.append(time.perf_counter() - started)
                        residents += rendered.counts.get("population", 0)
        service.close()
    store.close()
    print(f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}: {url.split(':')[0]} scale {scale}: "
          f"build {build:.1f} s ({counts['population']} residents); items limit=1000 median "
          f"{1000 * statistics.median(items):.1f} ms; {len(tiles)} z16 tiles ({residents} residents) median "
          f"{1000 * statistics.median(tiles):.1f} ms, sum {1000 * sum(tiles):.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
