"""`onemap load-raster`: a gridded population shared out to buildings by floor area.

The expected share-out is computed here from the raster file (rasterio's own `index`) and the
oracle's reading of the buildings, never with gis.raster.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
import numpy as np
import pyproj
import pytest
import rasterio
import shapely

from tests.oracle import read_layer
from tests.raster_support import onemap, write_population_raster


@pytest.fixture(scope="module")
def raster(tmp_path_factory, store):
    path = tmp_path_factory.mktemp("raster") / "people_3857.tif"
    write_population_raster(path, store, crs="EPSG:3857")
    return path


@pytest.fixture(scope="module")
def loaded(store, raster):
    result = onemap(store, "load-raster", raster, separate_process=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


@pytest.fixture(scope="module")
def expected(store, raster):
    """Each building's people and the people in cells without a building, computed by hand."""
    with rasterio.open(raster) as ds:
        people = ds.read(1, masked=True).filled(0).astype("float64")
        to_raster = pyproj.Transformer.from_crs(4490, ds.crs.to_wkt(), always_xy=True)
        members: dict[tuple[int, int], list] = defaultdict(list)
        for row in read_layer(store, "buildings"):
            point = shapely.point_on_surface(row.geom)
            r, c = ds.index(*to_raster.transform(point.x, point.y))
            assert 0 <= r < ds.height and 0 <= c < ds.width, "the test raster covers every building"
            members[(r, c)].append((row.id, row.props["floor_area_m2"] or 0.0))
    shares = {}
    for (r, c), buildings in members.items():
        area = sum(a for _, a in buildings)
        for building_id, a in buildings:
            shares[building_id] = people[r, c] * (a / area if area > 0 else 1 / len(buildings))
    unhoused = sum(
        people[r, c] for r in range(people.shape[0]) for c in range(people.shape[1]) if (r, c) not in members
    )
    return shares, float(people.sum()), float(unhoused)


def test_every_building_gets_its_cells_people_by_floor_area(store, loaded, expected):
    shares, _, _ = expected
    stored = {row.id: row.props["pop_estimate"] for row in read_layer(store, "buildings")}
    assert stored.keys() == shares.keys()
    ids = sorted(shares)
    np.testing.assert_allclose([stored[i] for i in ids], [shares[i] for i in ids], rtol=1e-9, atol=1e-9)


def test_people_are_conserved_and_those_without_a_building_reported(store, loaded, expected):
    _, total, unhoused = expected
    assert unhoused > 0, "the test raster has people beyond the city's buildings"
    stored = sum(row.props["pop_estimate"] for row in read_layer(store, "buildings"))
    assert stored == pytest.approx(total - unhoused, rel=1e-9)
    assert f"raster total: {total:,.2f}" in loaded
    assert f"{unhoused:,.2f} (not allocated)" in loaded


def test_the_estimate_is_an_indicator_like_any_other(store, loaded, live_server):
    stored = sum(row.props["pop_estimate"] for row in read_layer(store, "buildings"))
    body = httpx.get(f"{live_server}/stats", params={"indicator": "population_estimate"}, timeout=30).json()
    assert body["total"] == pytest.approx(stored, rel=1e-9)
    assert body["indicator"]["unit"] == "person"


def test_a_raster_in_another_crs_shares_out_the_same_people(store, loaded, raster, tmp_path):
    """The same cells in EPSG:4549 (a Gauss-Kruger CRS) instead of WebMercator: a fresh load
    replaces the estimates, and the sum still equals the raster's people minus the unhoused."""
    path = tmp_path / "people_4549.tif"
    write_population_raster(path, store, crs="EPSG:4549", cell=900.0)
    result = onemap(store, "load-raster", path)
    assert result.returncode == 0, result.stderr[-2000:]
    with rasterio.open(path) as ds:
        total = float(ds.read(1, masked=True).filled(0).sum())
    allocated = float(result.stderr.split("buildings: ")[1].split()[0].replace(",", ""))
    unhoused = float(result.stderr.split("without a building: ")[1].split()[0].replace(",", ""))
    assert allocated + unhoused == pytest.approx(total, abs=0.02)
    stored = sum(row.props["pop_estimate"] for row in read_layer(store, "buildings"))
    assert stored == pytest.approx(allocated, abs=0.01)
    # the module's other tests read the first raster's estimates: put them back
    assert onemap(store, "load-raster", raster).returncode == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--band", "2"], "has 1 band"),
        ([], "declares no CRS"),
    ],
)
def test_bad_rasters_are_refused_with_what_to_do(store, tmp_path, args, fragment):
    path = tmp_path / "no_crs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as ds:
        ds.write(np.ones((4, 4), dtype="float32"), 1)
    if "--band" in args:
        write_population_raster(path, store)
    result = onemap(store, "load-raster", path, *args)
    assert result.returncode != 0
    assert fragment in result.stderr and "Traceback" not in result.stderr
