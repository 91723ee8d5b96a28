"""/stats by grid, street and district read an index, not the whole table, and still give the
numbers an independent spatial join gives; stores built before the indexes gain them by migration."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import event, inspect, text

from gis.cli import main
from gis.settings import Settings
from gis.stats.aggregate import aggregate
from gis.stats.indicators import Indicators
from gis.storage import migrations
from gis.storage.tables import AREA_COLUMNS
from tests.imports_support import cli_env, close_store, onemap_load, open_store
from tests.oracle import read_layer
from tests.test_migrations import lamps


def indicators(store) -> Indicators:
    settings = Settings.from_env()
    return Indicators.load(settings.server.indicator_registry, store.catalog)


def district_of(store):
    """Each feature's district by its point on surface in the district polygons (no codes used)."""
    districts = read_layer(store, "districts")
    tree = shapely.STRtree([d.geom for d in districts])

    def find(geom) -> str:
        hits = tree.query(shapely.point_on_surface(geom), predicate="intersects")
        assert len(hits) >= 1
        return districts[min(hits)].props["code"]

    return find


@pytest.mark.parametrize("indicator, layer", [("cameras", "cameras"), ("buildings", "buildings")])
def test_counts_by_district_equal_an_independent_spatial_join(store, indicator, layer):
    find = district_of(store)
    expected = Counter(find(row.geom) for row in read_layer(store, layer))
    answer = aggregate(store, indicators(store).get(indicator), "district")
    assert dict(answer.groups) == dict(expected)
    assert all(isinstance(v, int) for _, v in answer.groups)  # counts stay integers, whatever SQL sums


def test_floor_area_by_district_is_the_sum_of_its_buildings(store):
    find = district_of(store)
    expected: dict[str, float] = defaultdict(float)
    for row in read_layer(store, "buildings"):
        expected[find(row.geom)] += row.props["floor_area_m2"] or 0
    answer = dict(aggregate(store, indicators(store).get("floor_area"), "district").groups)
    assert answer.keys() == expected.keys()
    for key, value in expected.items():
        assert float(answer[key]) == pytest.approx(value, rel=1e-9)


def statements_of(store, fn) -> list[tuple[str, object]]:
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("area", ["grid", "street", "district"])
def test_a_whole_city_question_by_area_reads_an_index_alone(store, area):
    """The statement /stats runs is answered from the area index, and on PostGIS without visiting
    the table's pages (the demo load leaves the visibility map set)."""
    residents = indicators(store).get("residents")
    ran = statements_of(store, lambda: aggregate(store, residents, area))
    (statement, params), = [(s, p) for s, p in ran if "GROUP BY" in s]  # not the connection's set-up
    index = f"population_{'street' if area == 'district' else area}"
    with store.engine.begin() as conn:
        if store.postgis:
            # the planner's choice depends on the table's size; this checks that the index can answer
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = json.dumps(conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params).scalar())
            scans = [n for n in _nodes(json.loads(plan)[0]["Plan"]) if n.get("Relation Name") == "population"]
            assert [n["Node Type"] for n in scans] == ["Index Only Scan"] and scans[0]["Index Name"] == index, plan
            rows = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in scans)
            fetched = sum(n["Heap Fetches"] for n in scans)
            assert rows > 0 and fetched <= rows // 10, plan  # other tests' edits may dirty a few pages
        else:
            plan = " ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all())
            assert f"USING COVERING INDEX {index}" in plan, plan


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def area_indexes(store, layer_id: str) -> set[str]:
    with store.engine.connect() as conn:
        return {i["name"] for i in inspect(conn).get_indexes(layer_id, schema=store.schema)}


def test_a_store_built_before_the_area_indexes_gains_them(backend, tmp_path):
    store = open_store(backend, tmp_path, "areaidx")
    try:
        result = onemap_load(store, lamps(tmp_path / "lamps.geojson", 20), "--layer", "urban_components", "--source-id", "SID")
        assert result.returncode == 0, result.stderr
        wanted = {f"urban_components_{c}" for c in AREA_COLUMNS}
        assert wanted <= area_indexes(store, "urban_components")
        with store.engine.begin() as conn:  # the store as revision 0003 left it
            for name in wanted:
                conn.execute(text(f'DROP INDEX "{store.schema}"."{name}"' if store.postgis else f'DROP INDEX "{name}"'))
            version = f'"{store.schema}"."{migrations.VERSION_TABLE}"' if store.postgis else migrations.VERSION_TABLE
            conn.execute(text(f"UPDATE {version} SET version_num = '0003'"))
        assert not wanted & area_indexes(store, "urban_components")
        env = {k: v for k, v in cli_env(store).items() if k.startswith("ONEMAP_")}
        outcome = CliRunner().invoke(main, ["migrate"], env=env)
        assert outcome.exit_code == 0 and "upgraded from 0003" in outcome.output, outcome.output
        assert wanted <= area_indexes(store, "urban_components")
        assert wanted.isdisjoint(area_indexes(store, "districts"))  # no grid or street codes there
    finally:
        close_store(store)
