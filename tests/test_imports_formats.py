"""`onemap load` reads every format a department brings, in any CRS, with the mapping it is given.

The same five places are written as GeoJSON by hand, then converted by GDAL's own ogr2ogr into
a GeoPackage, a Shapefile in a Gauss-Krüger CRS (plain and zipped) and a CSV; every load must
land the same places at the same lon/lat (EPSG:4490), with the attributes the mapping names.
Expected coordinates come from the hand-written file (and pyproj for the projected one), never
from the importer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile

import pytest

from tests.imports_support import close_store, lonlat, onemap_load, open_store, rows

PLACES = [
    # id, name, kind, capacity, lon, lat
    ("p1", "No. 1 Middle School", "school", 1800, 120.1512345, 30.2512345),
    ("p2", "People's Hospital", "hospital", 650, 120.1623456, 30.2623456),
    ("p3", "Sunshine Kindergarten", "kindergarten", None, 120.1734567, 30.2434567),
    ("p4", "East Gas Station", "gas_station", None, 120.1845678, 30.2745678),
    ("p5", "Central Market", "market", 3000, 120.1956789, 30.2356789),
]
MAPPING = """
source_id: CODE
attributes:
  name: TITLE
  category: KIND
  capacity: CAP
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    features = [
        {"type": "Feature", "properties": {"CODE": c, "TITLE": n, "KIND": k, "CAP": cap},
         "geometry": {"type": "Point", "coordinates": [x, y]}}
        for c, n, k, cap, x, y in PLACES
    ]
    geojson = d / "places.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    subprocess.run(["ogr2ogr", "-f", "GPKG", d / "places.gpkg", geojson], check=True)
    shp_dir = d / "shp"
    shp_dir.mkdir()
    subprocess.run(["ogr2ogr", "-f", "ESRI Shapefile", "-t_srs", "EPSG:4549", shp_dir / "places.shp", geojson], check=True)
    with zipfile.ZipFile(d / "places.zip", "w") as z:
        for part in shp_dir.iterdir():
            z.write(part, part.name)
    csv = d / "places.csv"
    csv.write_text(
        "CODE,TITLE,KIND,CAP,longitude,latitude\n"
        + "".join(f"{c},{n},{k},{'' if cap is None else cap},{x},{y}\n" for c, n, k, cap, x, y in PLACES),
        encoding="utf-8",
    )
    (d / "mapping.yml").write_text(MAPPING, encoding="utf-8")
    return d


@pytest.fixture()
def store(backend, tmp_path):
    store = open_store(backend, tmp_path, "formats")
    yield store
    close_store(store)


def expected_lonlat():
    return [(c, x, y) for c, _, _, _, x, y in PLACES]


@pytest.mark.parametrize("name", ["places.geojson", "places.gpkg", "shp/places.shp", "places.zip", "places.csv"])
def test_every_format_lands_the_same_places(store, files, name):
    crs = ["--crs", "EPSG:4326"] if name.endswith(".csv") else []  # a CSV cannot say its CRS
    result = onemap_load(store, files / name, "--layer", "key_places", "--mapping", files / "mapping.yml", *crs)
    assert result.returncode == 0, result.stderr
    assert "5 inserted" in result.stdout
    got = lonlat(store, "key_places")
    # the Gauss-Krüger round trip (ogr2ogr forward, the importer back) stays within a millimetre
    tolerance = 1e-8 if "shp" not in name and "zip" not in name else 1e-7
    assert [g[0] for g in got] == [e[0] for e in expected_lonlat()]
    for (_, x, y), (_, ex, ey) in zip(got, expected_lonlat()):
        assert x == pytest.approx(ex, abs=tolerance) and y == pytest.approx(ey, abs=tolerance)
    assert rows(store, "key_places", "name, category, capacity") == [(n, k, cap) for _, n, k, cap, _, _ in PLACES]


def test_command_line_mapping_and_constants(store, files):
    result = onemap_load(
        store, files / "places.geojson", "--layer", "key_places", "--source-id", "CODE",
        "--set", "name=join(' - ', TITLE, upper(KIND))", "--set", "category='clinic'", "--set", "capacity=CAP * 2",
    )
    assert result.returncode == 0, result.stderr
    assert rows(store, "key_places", "name, category, capacity") == [
        (f"{n} - {k.upper()}", "clinic", None if cap is None else cap * 2) for _, n, k, cap, _, _ in PLACES
    ]


def test_crs_option_for_a_file_that_does_not_say(store, files, tmp_path):
    # a Shapefile without its .prj knows no CRS: the importer asks for --crs, then reprojects
    bare = tmp_path / "bare"
    shutil.copytree(files / "shp", bare)
    (bare / "places.prj").unlink()
    result = onemap_load(store, bare / "places.shp", "--layer", "key_places", "--mapping", files / "mapping.yml")
    assert result.returncode != 0 and "--crs" in result.stderr and "Traceback" not in result.stderr
    result = onemap_load(
        store, bare / "places.shp", "--layer", "key_places", "--mapping", files / "mapping.yml", "--crs", "EPSG:4549"
    )
    assert result.returncode == 0, result.stderr
    for (_, x, y), (_, ex, ey) in zip(lonlat(store, "key_places"), expected_lonlat()):
        assert x == pytest.approx(ex, abs=1e-7) and y == pytest.approx(ey, abs=1e-7)


def test_typed_fields_keep_their_types_and_their_nulls(store, tmp_path):
    # a GeoPackage's date, integer and real fields (GDAL types them from the GeoJSON it converts),
    # each with a null: stored as the same dates and numbers, the nulls as NULL (not 0, NaN or '')
    square = [[[120.15, 30.25], [120.1501, 30.25], [120.1501, 30.2501], [120.15, 30.2501], [120.15, 30.25]]]
    homes = [("h1", "1 Lake Road", 6, 18.5, 2016, "2016-12-09"), ("h2", "2 Lake Road", 3, 9.0, None, None)]
    features = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[x + 0.001 * i, y] for x, y in square[0]]]},
         "properties": {"CODE": c, "ADDR": a, "FLOORS": f, "HEIGHT": h, "AREA": None if i else 512.25, "YEAR": year, "DONE": done}}
        for i, (c, a, f, h, year, done) in enumerate(homes)
    ]
    geojson = tmp_path / "homes.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    gpkg = tmp_path / "homes.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", gpkg, geojson], check=True)
    info = subprocess.run(["ogrinfo", "-so", "-al", gpkg], check=True, capture_output=True, text=True).stdout
    assert "DONE: Date" in info and "YEAR: Integer" in info and "AREA: Real" in info  # what the file holds
    result = onemap_load(
        store, gpkg, "--layer", "buildings", "--source-id", "CODE", "--set", "address=ADDR", "--set", "use_class='residential'",
        "--set", "floors=FLOORS", "--set", "height_m=HEIGHT", "--set", "floor_area_m2=AREA", "--set", "year_built=YEAR",
        "--set", "year_built_date=DONE",
    )
    assert result.returncode == 0, result.stderr
    stored = rows(store, "buildings", "source_id, floors, height_m, floor_area_m2, year_built, year_built_date")
    # PostGIS answers a date, the GeoPackage its ISO text (read here without the store's types)
    assert [(*r[:5], None if r[5] is None else str(r[5])) for r in stored] == [
        ("h1", 6, 18.5, 512.25, 2016, "2016-12-09"),
        ("h2", 3, 9.0, None, None, None),
    ]


def test_mistakes_are_explained_without_tracebacks(store, files):
    cases = [
        (["--layer", "nope"], "no layer 'nope'"),
        (["--layer", "key_places", "--set", "name=MISSING"], "no field 'MISSING'"),
        (["--layer", "key_places", "--set", "colour=TITLE"], "has no attribute colour"),
        (["--layer", "key_places", "--set", "name=__import__('os')"], "only these functions exist"),
        (["--layer", "key_places", "--set", "name=TITLE.upper()"], "only these functions exist"),
        (["--layer", "key_places", "--set", "name=TITLE.__class__"], "Attribute is not allowed"),
    ]
    for args, message in cases:
        result = onemap_load(store, files / "places.geojson", *args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    missing = onemap_load(store, files / "nothing.geojson", "--layer", "key_places")
    assert missing.returncode != 0 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_an_import_in_the_server_process_redraws_its_tiles_at_once(store, files):
    """run_import with the app's TileService drops the touched tiles before it returns."""
    import urllib.request

    import mapbox_vector_tile
    import morecantile

    from gis.app.factory import create_app
    from gis.imports.job import run_import
    from gis.imports.mapping import Mapping
    from tests.conftest import LiveServer, free_port

    _, _, _, _, lon, lat = PLACES[0]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 15)
    app = create_app(store.settings, store)
    with LiveServer(app, free_port()) as server:
        url = f"{server.url}/collections/key_places/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
        with urllib.request.urlopen(url) as response:
            assert response.status == 204  # nothing there yet (and now cached)
        mapping = Mapping.build(store.catalog["key_places"], files / "mapping.yml")
        report = run_import(store, files / "places.geojson", "key_places", mapping, tiles=app.state.tiles)
        assert report.written.inserted == len(PLACES)
        with urllib.request.urlopen(url) as response:
            assert response.status == 200
            layers = mapbox_vector_tile.decode(response.read())
        names = [f["properties"].get("name") for layer in layers.values() for f in layer["features"]]
        assert PLACES[0][1] in names
