"""Every feature carries its H3 cell from the moment it is written, and any coarser cell is
plain SQL on either backend: the base of every heatmap and statistic."""

from __future__ import annotations

import random

import h3
import pytest
import shapely
from sqlalchemy import func, select

from gis.hexagons import FINEST_RES, parent, parent_sql
from tests.oracle import read_layer


def test_the_bit_arithmetic_parent_is_h3s_parent_at_every_resolution():
    rng = random.Random(3)
    for _ in range(300):
        lat, lon = rng.uniform(-80, 80), rng.uniform(-180, 180)
        cell = h3.latlng_to_cell(lat, lon, FINEST_RES)
        for res in range(FINEST_RES + 1):
            assert h3.int_to_str(parent(h3.str_to_int(cell), res)) == h3.cell_to_parent(cell, res)


@pytest.mark.parametrize("layer_id", ["cameras", "buildings"])
def test_stored_cells_are_the_cells_of_the_features_points(store, layer_id):
    table = store.tables[layer_id]
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(table.c.id, table.c.h3)).all())
    rows = read_layer(store, layer_id)
    assert len(stored) == len(rows)
    for row in rows[:2000]:
        point = shapely.point_on_surface(row.geom)
        assert h3.int_to_str(stored[row.id]) == h3.latlng_to_cell(point.y, point.x, FINEST_RES), row.id
        if layer_id == "buildings":
            assert row.geom.contains(point)


@pytest.mark.parametrize("res", [5, 7, 9])
def test_grouping_by_a_coarser_cell_in_sql_counts_every_feature_in_its_parent(store, res):
    table = store.tables["urban_components"]
    cell = parent_sql(table.c.h3, res).label("cell")
    with store.engine.connect() as conn:
        grouped = dict(conn.execute(select(cell, func.count()).group_by(cell)).all())
    expected: dict[str, int] = {}
    for row in read_layer(store, "urban_components"):
        # H3 does not nest exactly: a point's own res-r cell can differ from the parent of its
        # fine cell. OneMap's one definition is the parent, in every output.
        key = h3.cell_to_parent(h3.latlng_to_cell(row.geom.y, row.geom.x, FINEST_RES), res)
        expected[key] = expected.get(key, 0) + 1
    assert {h3.int_to_str(k): v for k, v in grouped.items()} == expected


def test_resolutions_outside_the_stored_range_are_refused(store):
    with pytest.raises(ValueError, match="resolution"):
        parent_sql(store.tables["cameras"].c.h3, FINEST_RES + 1)
