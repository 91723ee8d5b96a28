"""Changes written by other systems, straight into the database, reach every view within seconds.

PostGIS: plain SQL over a connection of its own (psycopg), as a departmental system would write.
GeoPackage: GDAL's ogr2ogr and ogrinfo, the tools another system would use on the file.
Neither goes through OneMap: the layer triggers and the app's listener (PostGIS) or version poll
(GeoPackage) must carry the change to the data version, counts, /stats, tiles and H3 cells.
"""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import psycopg
import pytest
import shapely

from gis import hexagons
from tests.edit_city import build
from tests.oracle import read_layer
from tests.test_edits_api import Z, matched, tile_ids, total

UC = "urban_components"
DEADLINE = 5.0  # seconds: "within seconds"


@pytest.fixture(scope="module")
def city(backend, tmp_path_factory):
    built, cleanup = build(backend, tmp_path_factory.mktemp("edits_external"), "edits_external")
    built.backend = backend
    built.tmp = tmp_path_factory.mktemp("external_files")
    yield built
    cleanup()


@pytest.fixture(scope="module")
def admin(city):
    with city.client(city.admin) as client:
        yield client


def sql(city, statement: str) -> None:
    """One statement run by 'another system'."""
    if city.backend == "postgis":
        url = city.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path = "{city.store.schema}", public')
            conn.execute(statement)
    else:
        gpkg = city.store.settings.database.database_url.removeprefix("gpkg://")
        done = subprocess.run(["ogrinfo", "-q", gpkg, "-sql", statement], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr


def insert(city, rows: list[tuple[float, float, str]], first_id: int = 900_000) -> None:
    """New components, without ids' or H3 cells' help from OneMap."""
    if city.backend == "postgis":
        values = ", ".join(
            f"({first_id + i}, '0307', 'trash bin', 'sanitation', '{status}', ST_SetSRID(ST_MakePoint({lon!r}, {lat!r}), 4490))"
            for i, (lon, lat, status) in enumerate(rows)
        )
        sql(city, f"INSERT INTO {UC} (id, type_code, type_name, owner_dept, status, geom) VALUES {values}")  # one statement
        return
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"type_code": "0307", "type_name": "trash bin", "owner_dept": "sanitation", "status": status}}
        for lon, lat, status in rows
    ]
    source = city.tmp / f"new_{time.monotonic_ns()}.geojson"
    source.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    gpkg = city.store.settings.database.database_url.removeprefix("gpkg://")
    done = subprocess.run(["ogr2ogr", "-append", "-nln", UC, gpkg, str(source)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def eventually(check, what: str):
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > DEADLINE:
            pytest.fail(f"{what} did not happen within {DEADLINE} s")
        time.sleep(0.1)


def a_place(city, step: int) -> tuple[float, float]:
    rows = read_layer(city.store, UC)
    base = rows[len(rows) // 4].geom
    return base.x + 0.00041 * step, base.y - 0.00023 * step


def test_rows_inserted_by_another_system_are_counted_drawn_and_given_h3_cells(city, admin):
    places = [(*a_place(city, i), "missing") for i in range(1, 4)]
    for lon, lat, _ in places:
        tile_ids(admin, UC, lon, lat)  # cached before the write: it must be dropped
    count, uc_total, repair = matched(admin, UC), total(admin, "urban_components"), total(admin, "components_needing_repair")
    version = city.store.layer_meta(UC).version
    insert(city, places)
    new = [r for r in read_layer(city.store, UC) if any(r.geom.equals_exact(shapely.Point(lon, lat), 1e-9) for lon, lat, _ in places)]
    assert len(new) == 3
    # in the writer's own transaction: the version, the exact count and the sums
    assert city.store.layer_meta(UC).version > version
    assert city.store.layer_meta(UC).feature_count == len(read_layer(city.store, UC)) == count + 3
    assert matched(admin, UC) == count + 3
    assert total(admin, "urban_components") == uc_total + 3
    assert total(admin, "components_needing_repair") == repair + 3
    # within seconds: the tiles over them and their H3 cells
    for row in new:
        eventually(lambda: row.id in tile_ids(admin, UC, row.geom.x, row.geom.y), f"tile showing new row {row.id}")
    eventually(lambda: all(h is not None for h in _h3(city, [r.id for r in new])), "H3 cells of the new rows")


def test_an_update_by_another_system_redraws_its_tiles(city, admin):
    row = read_layer(city.store, UC)[7]
    status = "damaged" if row.props["status"] != "damaged" else "normal"
    assert tile_ids(admin, UC, row.geom.x, row.geom.y)[row.id]["status"] == row.props["status"]
    sql(city, f"UPDATE {UC} SET status = '{status}' WHERE id = {row.id}")
    elapsed = eventually(lambda: tile_ids(admin, UC, row.geom.x, row.geom.y)[row.id]["status"] == status, "redrawn tile")
    assert elapsed < DEADLINE


def test_a_geometry_moved_by_another_system_gets_a_fresh_h3_cell(city, admin):
    if city.backend != "postgis":
        pytest.skip("SQLite triggers cannot clear a column of the row being updated; GeoPackage writers set h3 themselves")
    row = read_layer(city.store, UC)[9]
    old_cell = _h3(city, [row.id])[0]
    lon, lat = row.geom.x + 0.01, row.geom.y + 0.01
    sql(city, f"UPDATE {UC} SET geom = ST_SetSRID(ST_MakePoint({lon!r}, {lat!r}), 4490) WHERE id = {row.id}")
    expected = hexagons.cells(np.asarray([shapely.Point(lon, lat)], dtype=object))[0]
    assert expected != old_cell
    eventually(lambda: _h3(city, [row.id])[0] == expected, "the moved row's new H3 cell")
    eventually(lambda: row.id in tile_ids(admin, UC, lon, lat), "the tile at the new place")


def test_a_delete_by_another_system_shrinks_the_extent_exactly(city, admin):
    rows = read_layer(city.store, UC)
    eastmost = max(rows, key=lambda r: r.geom.x)
    tile_ids(admin, UC, eastmost.geom.x, eastmost.geom.y)
    sql(city, f"DELETE FROM {UC} WHERE id = {eastmost.id}")
    rest = read_layer(city.store, UC)
    meta = city.store.layer_meta(UC)
    assert meta.feature_count == len(rest) == len(rows) - 1
    assert meta.bbox == pytest.approx(shapely.MultiPoint([r.geom for r in rest]).bounds, abs=1e-12)
    eventually(lambda: eastmost.id not in tile_ids(admin, UC, eastmost.geom.x, eastmost.geom.y), "tile without the deleted row")


def test_a_layer_rebuilt_while_the_app_runs_still_reports_writes_by_another_system(city, admin):
    """`onemap demo --force` drops and recreates the tables under a running app: the new table
    comes with its triggers, so the next write by another system still moves the layer's data
    version and exact count (what tiles, heatmaps and cached numbers key on) and reaches /stats."""
    rebuild(city, UC)
    before, version = total(admin, "urban_components"), city.store.layer_meta(UC).version
    lon, lat = a_place(city, 11)
    drawn = len(tile_ids(admin, UC, lon, lat))  # cached before the write: it must be dropped
    insert(city, [(lon, lat, "missing")], first_id=910_000)
    meta = city.store.layer_meta(UC)
    assert meta.version > version
    assert meta.feature_count == len(read_layer(city.store, UC))
    eventually(lambda: total(admin, "urban_components") == before + 1, "/stats counting a row written after the rebuild")
    eventually(lambda: len(tile_ids(admin, UC, lon, lat)) == drawn + 1, "the tile showing the new row")


def rebuild(city, layer_id: str) -> None:
    """What `onemap demo --force` does to a layer (Store.replacing), with the rows it holds."""
    from sqlalchemy import select

    from gis.storage.store import Batch

    store = city.store
    table = store.tables[layer_id]
    names = [a.name for a in store.catalog[layer_id].attributes]
    with store.engine.connect() as conn:
        rows = conn.execute(select(table.c.id, *(table.c[n] for n in names)).order_by(table.c.id)).all()
    geoms = {row.id: row.geom for row in read_layer(store, layer_id)}
    batch = Batch([r[0] for r in rows], np.asarray([geoms[r[0]] for r in rows], dtype=object),
                  {name: [r[k + 1] for r in rows] for k, name in enumerate(names)})
    with store.replacing(layer_id) as loader:
        loader.append(batch)


def _h3(city, ids: list[int]) -> list[int | None]:
    from sqlalchemy import select

    table = city.store.tables[UC]
    with city.store.engine.connect() as conn:
        found = dict(conn.execute(select(table.c.id, table.c.h3).where(table.c.id.in_(ids))).all())
    return [found.get(i) for i in ids]


assert Z >= 20  # every feature is drawn at this depth (no thinning), so a missing id means a stale tile
