"""`onemap export-raster`: any indicator's aggregate as a Cloud-Optimized GeoTIFF, suppressed
like every other output, whose sum plus `suppressed` is the /stats total.

The files are checked with GDAL's own tools (gdalinfo, GDAL's COG validator) and rasterio;
the expected square-cell counts come from the oracle's reading of the layer.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import h3
import httpx
import numpy as np
import pyproj
import pytest
import rasterio

from gis.hexagons import FINEST_RES
from tests.oracle import read_layer
from tests.raster_support import onemap, write_population_raster

K = 10
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with GDAL's bindings (python3-gdal)
VALIDATOR = "osgeo_utils.samples.validate_cloud_optimized_geotiff"


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("cog")


def export(store, path, *args, separate_process=False):
    result = onemap(store, "export-raster", path, *args, separate_process=separate_process)
    assert result.returncode == 0, result.stderr[-2000:]
    return path


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.nodata, ds.tags(), ds.transform, ds.crs


def raster_sum(image, nodata):
    return float(image[image != nodata].sum())


def validate_cog(path):
    result = subprocess.run([SYSTEM_PYTHON, "-m", VALIDATOR, str(path)], capture_output=True, text=True)
    if "No module named" in result.stderr:
        pytest.fail("GDAL's Python bindings are missing: install python3-gdal (make test does)")
    assert result.returncode == 0 and "is a valid cloud optimized GeoTIFF" in result.stdout, result.stdout + result.stderr


@pytest.fixture(scope="module")
def residents_200m(store, out):
    return export(store, out / "residents_200m.tif", "--indicator", "residents", "--res", "200", separate_process=True)


def test_square_cells_make_a_valid_cog_that_gdal_reads(residents_200m):
    validate_cog(residents_200m)
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(residents_200m)], capture_output=True, text=True, check=True).stdout)
    band = info["bands"][0]
    assert band["block"] == [256, 256] and band["overviews"], "tiled, with overviews"
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert band["noDataValue"] == -9999
    assert info["metadata"][""]["ONEMAP_INDICATOR"] == "residents"
    assert "4549" in info["coordinateSystem"]["wkt"].split("ID[")[-1]


def test_square_cells_sum_with_suppressed_to_the_stats_total(http, residents_200m):
    image, nodata, tags, _, _ = read(residents_200m)
    body = http.get("/stats", params={"indicator": "residents"}).json()
    assert raster_sum(image, nodata) + float(tags["SUPPRESSED_VALUE"]) == body["total"]
    shown = image[(image != nodata) & (image > 0)]
    assert shown.min() >= K, "no cell of fewer than k people is shown"
    assert int(tags["SUPPRESSED_GROUPS"]) == int((image == nodata).sum()) > 0


def test_square_cells_hold_the_people_whose_h3_cell_centre_lies_in_them(store, residents_200m):
    image, nodata, _, transform, crs = read(residents_200m)
    to_raster = pyproj.Transformer.from_crs(4490, crs.to_wkt(), always_xy=True)
    expected: Counter = Counter()
    for row in read_layer(store, "population"):
        lat, lon = h3.cell_to_latlng(h3.latlng_to_cell(row.geom.y, row.geom.x, FINEST_RES))
        col, r = ~transform * to_raster.transform(lon, lat)
        expected[(int(r), int(col))] += 1
    for (r, c), count in expected.items():
        assert image[r, c] in (count, nodata)
    assert raster_sum(image, nodata) == sum(v for (r, c), v in expected.items() if image[r, c] != nodata)


@pytest.mark.parametrize("indicator, res", [("residents", 8), ("key_persons", 9), ("cameras", 9)])
def test_hexagons_sum_with_suppressed_to_the_stats_total(http, store, out, indicator, res):
    path = export(store, out / f"{indicator}_h3_{res}.tif", "--indicator", indicator, "--h3", str(res))
    validate_cog(path)
    image, nodata, tags, _, _ = read(path)
    city = http.get("/stats", params={"indicator": indicator}).json()
    cells = http.get("/stats", params={"indicator": indicator, "by": "h3", "res": res}).json()
    assert raster_sum(image, nodata) == pytest.approx(sum(g["value"] for g in cells["groups"]), rel=1e-12)
    if cells["suppressed"]["value"] is None:
        assert tags["SUPPRESSED_VALUE"] == ""
        return
    assert float(tags["SUPPRESSED_VALUE"]) == cells["suppressed"]["value"]
    assert int(tags["SUPPRESSED_GROUPS"]) == cells["suppressed"]["groups"]
    assert raster_sum(image, nodata) + float(tags["SUPPRESSED_VALUE"]) == pytest.approx(city["total"], rel=1e-12)


def test_a_summed_indicator_exports_its_sum(http, store, out, tmp_path):
    raster = tmp_path / "people.tif"
    write_population_raster(raster, store)
    assert onemap(store, "load-raster", raster).returncode == 0
    path = export(store, out / "estimate.tif", "--indicator", "population_estimate", "--res", "500")
    image, nodata, tags, _, _ = read(path)
    body = http.get("/stats", params={"indicator": "population_estimate"}).json()
    assert raster_sum(image, nodata) + float(tags["SUPPRESSED_VALUE"]) == pytest.approx(body["total"], rel=1e-9)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--indicator", "residents"], "either --res"),
        (["--indicator", "residents", "--res", "100", "--h3", "8"], "either --res"),
        (["--indicator", "nope", "--res", "100"], "no indicator 'nope'"),
        (["--indicator", "residents", "--res", "100", "--crs", "EPSG:4326"], "not a projected CRS"),
        (["--indicator", "residents", "--res", "0.01"], "use larger cells"),
    ],
)
def test_bad_exports_are_refused_with_what_to_do(store, out, args, fragment):
    result = onemap(store, "export-raster", out / "bad.tif", *args)
    assert result.returncode != 0
    assert fragment in result.stderr and "Traceback" not in result.stderr
