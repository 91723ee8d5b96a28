"""Specification of the demo city generator (gis.demo).

The city is built at a tiny scale into a GeoPackage in a temporary directory and read back
through the store; every geometric promise (nesting, tiling, containment, no overlaps) is
checked here with shapely, independently of how the generator arranged it. One test builds the
same city into PostGIS and expects identical layer contents.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from gis.catalog import AttrType, Catalog
from gis.demo import city as demo_city
from gis.demo.city import build_demo
from gis.demo.layout import M_PER_DEG_LAT, M_PER_DEG_LON
from gis.demo.people import AGE_BANDS, REFERENCE_DATE
from gis.demo.places import COMPONENT_TYPES
from gis.security.encryption import encrypted_names
from gis.settings import REPO_ROOT, DatabaseSettings, ServerSettings, Settings
from gis.storage.store import Store

SCALE = 0.005
SEED = 42
POSTGRES_URL = os.environ.get("ONEMAP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/onemap_test")
POINT_LAYERS = ("population", "key_places", "cameras", "urban_components")
PINGDU_UNITS = {
    "李园街道", "东阁街道", "凤台街道", "南村镇", "蓼兰镇", "明村镇", "田庄镇", "新河镇", "店子镇",
    "大泽山镇", "旧店镇", "云山镇", "崔家集镇", "古岘镇", "仁兆镇", "同和街道", "白沙河街道",
}
M2_PER_DEG2 = M_PER_DEG_LON * M_PER_DEG_LAT


class Layer:
    """One layer as read back from the store: ids, shapely geometries, attribute columns."""

    def __init__(self, ids, geoms, columns):
        self.ids, self.geoms, self.columns = ids, geoms, columns

    def __len__(self) -> int:
        return len(self.ids)

    def col(self, name: str) -> list:
        return self.columns[name]


def gpkg_settings(path) -> Settings:
    return Settings(DatabaseSettings(database_url=f"gpkg:///{path}"), ServerSettings())


def read_city(store: Store) -> dict[str, Layer]:
    out = {}
    with store.engine.connect() as conn:
        for layer in store.catalog:
            table = store.tables[layer.id]
            names = [a.name for a in layer.attributes]
            query = select(table.c.id, *(table.c[n] for n in names), store.backend.as_wkb(table.c.geom)).order_by(table.c.id)
            rows = conn.execute(query).all()
            cols = list(zip(*rows)) if rows else [()] * (len(names) + 2)
            geoms = shapely.from_wkb([bytes(w) for w in cols[-1]]) if rows else np.array([], dtype=object)
            sealed = encrypted_names(layer)  # stored encrypted: opened with the store's key, in Python
            columns = {n: [store.key.open(v) for v in c] if n in sealed else list(c) for n, c in zip(names, cols[1:-1])}
            out[layer.id] = Layer(list(cols[0]), geoms, columns)
    return out


def build(path, scale: float = SCALE, seed: int = SEED) -> tuple[dict[str, int], dict[str, Layer]]:
    store = Store.open(gpkg_settings(path))
    try:
        store.initialise()
        counts = build_demo(store, scale=scale, seed=seed)
        return counts, read_city(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(REPO_ROOT / "layers")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("demo") / "city.gpkg")


@pytest.fixture(scope="module")
def counts(built) -> dict[str, int]:
    return built[0]


@pytest.fixture(scope="module")
def city(built) -> dict[str, Layer]:
    return built[1]


def by_code(layer: Layer, attr: str) -> dict[str, object]:
    return dict(zip(layer.col(attr), layer.geoms))


def fingerprint(layers: dict[str, Layer]) -> dict[str, tuple]:
    """Everything a layer holds, comparable across stores: ids, exact WKB, attribute values."""
    out = {}
    for layer_id, layer in layers.items():
        wkb = tuple(shapely.to_wkb(layer.geoms, byte_order=1).tolist())
        attrs = tuple(sorted((name, tuple(map(_comparable, col))) for name, col in layer.columns.items()))
        out[layer_id] = (tuple(layer.ids), wkb, attrs)
    return out


def _comparable(value) -> str:
    """PostgreSQL hands datetimes back in the session's time zone: compare instants."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return repr(value)


# -- the whole catalog, filled -------------------------------------------------------------------


def test_every_layer_filled_with_consecutive_ids(catalog, counts, city):
    assert set(counts) == {layer.id for layer in catalog}
    for layer in catalog:
        assert counts[layer.id] > 0, layer.id
        assert city[layer.id].ids == list(range(1, counts[layer.id] + 1)), layer.id


def test_required_attributes_are_never_null(catalog, city):
    for layer in catalog:
        for attr in layer.attributes:
            if attr.required:
                assert all(v is not None for v in city[layer.id].col(attr.name)), f"{layer.id}.{attr.name}"


def test_every_attribute_is_filled(catalog, city):
    for layer in catalog:
        for attr in layer.attributes:
            values = city[layer.id].col(attr.name)
            if layer.id == "population" and attr.name == "key_category":
                continue  # mostly empty by design
            assert any(v is not None for v in values), f"{layer.id}.{attr.name} is empty"


def test_values_match_declared_types_and_enums(catalog, city):
    python_types = {
        AttrType.string: str, AttrType.integer: int, AttrType.number: (int, float), AttrType.boolean: bool,
        AttrType.date: dt.date, AttrType.datetime: dt.datetime,
    }
    for layer in catalog:
        for attr in layer.attributes:
            for value in city[layer.id].col(attr.name):
                if value is None:
                    continue
                assert isinstance(value, python_types[attr.type]), f"{layer.id}.{attr.name}: {value!r}"
                if attr.type is AttrType.date:
                    assert not isinstance(value, dt.datetime)
                if attr.type is AttrType.datetime:
                    assert value.utcoffset() == dt.timedelta(0), f"{layer.id}.{attr.name} not UTC: {value!r}"
                if attr.enum:
                    assert value in attr.enum, f"{layer.id}.{attr.name}: {value!r}"


def test_geometry_types_and_validity(catalog, city):
    type_ids = {"Point": 0, "LineString": 1, "Polygon": 3, "MultiPolygon": 6}
    for layer in catalog:
        geoms = city[layer.id].geoms
        assert set(shapely.get_type_id(geoms).tolist()) == {type_ids[layer.geometry.value]}, layer.id
        assert shapely.is_valid(geoms).all(), layer.id


def test_the_city_is_around_pingdu(city):
    minx, miny, maxx, maxy = shapely.total_bounds(city["districts"].geoms)
    assert 119.4 < minx < maxx < 120.5 and 36.3 < miny < maxy < 37.3
    assert 0.6 < maxx - minx < 1.0 and 0.5 < maxy - miny < 0.8
    area_km2 = shapely.area(city["districts"].geoms).sum() * M2_PER_DEG2 / 1e6
    assert 2_500 < area_km2 < 4_500
    for layer in city.values():
        bx0, by0, bx1, by1 = shapely.total_bounds(layer.geoms)
        assert minx <= bx0 and miny <= by0 and bx1 <= maxx and by1 <= maxy


# -- administrative nesting ------------------------------------------------------------------------


def test_districts_and_streets(city):
    districts, streets = city["districts"], city["streets"]
    assert len(districts) == 5
    assert len(streets) == 17
    assert set(streets.col("name")) == PINGDU_UNITS
    assert all(re.fullmatch(r"370283\d\d", c) for c in districts.col("code"))
    assert all(re.fullmatch(r"370283\d{3}", c) for c in streets.col("code"))
    assert len(set(streets.col("code"))) == 17
    district_geom = by_code(districts, "code")
    for geom, code in zip(streets.geoms, streets.col("district")):
        inside = shapely.intersection(geom, district_geom[code]).area
        assert inside / geom.area > 0.999


def test_grids_nest_in_streets_and_tile_them(city):
    grids, streets = city["grids"], city["streets"]
    street_geom = by_code(streets, "code")
    area_by_street = defaultdict(float)
    for geom, code, street in zip(grids.geoms, grids.col("grid_code"), grids.col("street")):
        assert re.fullmatch(rf"{street}-\d{{3}}", code), code
        area_by_street[street] += geom.area
        assert shapely.intersection(geom, street_geom[street]).area / geom.area > 0.999, code
    assert len(set(grids.col("grid_code"))) == len(grids)
    for code, geom in street_geom.items():
        assert area_by_street[code] == pytest.approx(geom.area, rel=1e-3), code
    # and streets tile their districts, districts the city
    district_area = defaultdict(float)
    for geom, district in zip(streets.geoms, streets.col("district")):
        district_area[district] += geom.area
    for geom, code in zip(city["districts"].geoms, city["districts"].col("code")):
        assert district_area[code] == pytest.approx(geom.area, rel=1e-3), code


def test_grids_do_not_overlap(city):
    geoms = city["grids"].geoms
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    pairs = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[pairs]], geoms[b[pairs]])).sum()
    assert overlap < 1e-6 * shapely.area(geoms).sum()


def test_grid_areas_recorded(city):
    for layer_id in ("districts", "streets", "grids"):
        layer = city[layer_id]
        measured = shapely.area(layer.geoms) * M2_PER_DEG2 / 1e6
        np.testing.assert_allclose(layer.col("area_km2"), measured, rtol=0.01, atol=1e-4)


def test_grid_count_scales_with_a_floor():
    assert demo_city.GRIDS == 2_176
    assert max(demo_city.MIN_GRIDS, round(2_176 * SCALE)) == 20


# -- every feature in the grid and street it names -----------------------------------------------


@pytest.mark.parametrize("layer_id", POINT_LAYERS)
def test_points_lie_in_the_grid_and_street_they_name(city, layer_id):
    layer = city[layer_id]
    assert_in_named_polygons(layer, city["grids"], "grid_code", "grid")
    assert_in_named_polygons(layer, city["streets"], "code", "street")


def test_buildings_lie_wholly_in_their_grid_and_street(city):
    buildings = city["buildings"]
    grids, streets = by_code(city["grids"], "grid_code"), by_code(city["streets"], "code")
    assert shapely.within(buildings.geoms, np.array([grids[g] for g in buildings.col("grid")])).all()
    assert shapely.within(buildings.geoms, np.array([streets[s] for s in buildings.col("street")])).all()
    assert_in_named_polygons(buildings, city["grids"], "grid_code", "grid", probe=shapely.point_on_surface)


def assert_in_named_polygons(layer: Layer, polygons: Layer, code_attr: str, attr: str, probe=None) -> None:
    """Independent spatial join: the one polygon containing each feature must carry its code."""
    probes = probe(layer.geoms) if probe else layer.geoms
    tree = shapely.STRtree(polygons.geoms)
    inp, idx = tree.query(probes, predicate="within")
    hits = np.bincount(inp, minlength=len(layer))
    assert (hits == 1).all(), f"{int((hits != 1).sum())} features not in exactly one {attr}"
    codes = np.array(polygons.col(code_attr), dtype=object)
    found = np.empty(len(layer), dtype=object)
    found[inp] = codes[idx]
    named = np.array(layer.col(attr), dtype=object)
    assert (found == named).all(), f"{int((found != named).sum())} features name the wrong {attr}"


# -- buildings ------------------------------------------------------------------------------------


def test_buildings_do_not_overlap(city):
    geoms = city["buildings"].geoms
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert (a == b).all(), f"{int((a != b).sum() // 2)} overlapping pairs"


def test_building_sizes_and_heights_are_plausible(city):
    b = city["buildings"]
    area = shapely.area(b.geoms) * M2_PER_DEG2
    use = np.array(b.col("use_class"))
    floors = np.array(b.col("floors"))
    rural = use == "rural_house"
    assert rural.mean() > 0.5  # villages of courtyard houses make up most of Pingdu's buildings
    assert 80 < np.median(area[rural]) < 160 and area[rural].max() < 200
    assert (floors[rural] <= 2).all()
    towers = (use == "residential") & (floors >= 11)
    assert towers.any() and 400 < np.median(area[towers]) < 900
    height = np.array(b.col("height_m"))
    assert ((height > 2.5 * floors) & (height < 9 * floors + 2)).all()
    np.testing.assert_allclose(b.col("floor_area_m2"), area * floors, rtol=0.01)
    years = np.array(b.col("year_built"))
    assert ((years >= 1950) & (years <= 2025)).all()
    assert all(d.year == y for d, y in zip(b.col("year_built_date"), years.tolist()))
    assert len(set(b.col("address"))) == len(b)


# -- residents ------------------------------------------------------------------------------------


def test_residents_live_inside_their_building(city):
    people, buildings = city["population"], city["buildings"]
    home = buildings.geoms[np.array(people.col("building")) - 1]
    assert shapely.contains(home, people.geoms).all()
    homes = {
        i: (addr, g, s)
        for i, addr, g, s in zip(buildings.ids, buildings.col("address"), buildings.col("grid"), buildings.col("street"))
    }
    rows = zip(people.col("building"), people.col("address"), people.col("grid"), people.col("street"))
    for b, address, grid, street in rows:
        assert address.startswith(homes[b][0])
        assert (grid, street) == homes[b][1:]
    lived_in = Counter(buildings.col("use_class")[b - 1] for b in set(people.col("building")))
    assert set(lived_in) <= {"residential", "mixed", "rural_house"}


def test_households(city):
    people = city["population"]
    members = defaultdict(list)
    for hh, b, addr in zip(people.col("household"), people.col("building"), people.col("address")):
        members[hh].append((b, addr))
    sizes = Counter(len(m) for m in members.values())
    assert set(sizes) <= set(range(1, 7))
    assert all(len(set(m)) == 1 for m in members.values()), "a household spans addresses"


def test_national_ids_are_valid_and_agree_with_age(city):
    people = city["population"]
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    bands = {name: (lo, hi) for name, lo, hi in AGE_BANDS}
    ids = people.col("national_id")
    assert len(set(ids)) == len(ids)
    for nid, band in zip(ids, people.col("age_band")):
        assert re.fullmatch(r"370283\d{11}[\dX]", nid), nid
        assert "10X98765432"[sum(int(c) * w for c, w in zip(nid[:17], weights)) % 11] == nid[17], nid
        birth = dt.date(int(nid[6:10]), int(nid[10:12]), int(nid[12:14]))
        age = REFERENCE_DATE.year - birth.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (birth.month, birth.day))
        lo, hi = bands[band]
        assert lo <= age <= (hi if band != "80+" else 120), (nid, band)


def test_resident_names_phones_and_key_categories(city):
    people = city["population"]
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,4}", n) for n in people.col("name"))
    phones = [p for p in people.col("phone") if p is not None]
    assert len(phones) > 0.7 * len(people)
    assert all(re.fullmatch(r"1[3-9]\d{9}", p) for p in phones)
    keyed = sum(k is not None for k in people.col("key_category"))
    assert 0 < keyed < 0.1 * len(people)
    bands = Counter(people.col("age_band"))
    assert set(bands) == {b[0] for b in AGE_BANDS}
    assert len(set(people.col("person_id"))) == len(people)


# -- places, cameras, components ------------------------------------------------------------------


def test_key_places(city):
    places = city["key_places"]
    assert len(set(places.col("category"))) >= 6
    names = places.col("name")
    assert len(set(names)) == len(names)
    assert all(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    assert all(c is None or re.fullmatch(r"0532-\d{8}", c) for c in places.col("contact"))


def test_cameras(city):
    cams = city["cameras"]
    status = Counter(cams.col("status"))
    assert status["online"] > 0.8 * len(cams) and status["offline"] > 0
    assert all(u.startswith("rtsp://") for u in cams.col("stream_url"))
    assert all(0 <= d < 360 for d in cams.col("direction_deg"))
    assert all(20 <= f <= 120 for f in cams.col("fov_deg"))


def test_urban_components_carry_the_standard_names(city):
    comp = city["urban_components"]
    for code, name in zip(comp.col("type_code"), comp.col("type_name")):
        assert COMPONENT_TYPES[code][0] == name
    assert {"0125", "0405", "0307"} <= set(comp.col("type_code"))


# -- scale and determinism ------------------------------------------------------------------------


def test_counts_scale_linearly(counts):
    double = {k: len(v.geoms) for k, v in demo_city.generate(SCALE * 2, SEED).items()}
    assert counts["population"] == round(demo_city.RESIDENTS * SCALE)
    assert double["population"] == round(demo_city.RESIDENTS * SCALE * 2)
    for layer_id, full in (("key_places", demo_city.KEY_PLACES), ("cameras", demo_city.CAMERAS),
                           ("urban_components", demo_city.COMPONENTS)):
        # a few points can fall on a grid edge or outside the city and are left out
        assert counts[layer_id] == pytest.approx(full * SCALE, rel=0.03, abs=1), layer_id
        assert double[layer_id] == pytest.approx(full * SCALE * 2, rel=0.03, abs=1), layer_id
    assert double["buildings"] / counts["buildings"] == pytest.approx(2, rel=0.3)
    assert double["grids"] == round(demo_city.GRIDS * SCALE * 2)
    assert counts["districts"] == double["districts"] == 5 and counts["streets"] == double["streets"] == 17


def test_same_seed_same_city_other_seed_other_city(tmp_path, city):
    _, again = build(tmp_path / "again.gpkg")
    assert fingerprint(again) == fingerprint(city)
    other = demo_city.generate(SCALE, SEED + 1)
    assert shapely.to_wkb(other["buildings"].geoms[:50]).tolist() != shapely.to_wkb(city["buildings"].geoms[:50]).tolist()
    assert other["population"].columns["name"][:50] != city["population"].col("name")[:50]


def test_progress_reports_every_layer_as_batches_land(tmp_path, catalog):
    calls = []
    store = Store.open(gpkg_settings(tmp_path / "progress.gpkg"))
    try:
        counts = build_demo(store, scale=0.002, seed=SEED, progress=lambda *call: calls.append(call))
    finally:
        store.close()
    last = {}
    for layer_id, done, total in calls:
        assert total == counts[layer_id] and 0 < done <= total
        assert done > last.get(layer_id, 0)
        last[layer_id] = done
    assert last == counts and set(last) == {layer.id for layer in catalog}


def test_postgis_holds_the_same_city(city):
    schema = f"demo_spec_{os.getpid()}"
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:
        pytest.fail(f"PostGIS is not reachable at {POSTGRES_URL} ({str(err).splitlines()[0]}): set ONEMAP_TEST_POSTGRES_URL")
    store = Store.open(Settings(DatabaseSettings(database_url=POSTGRES_URL, schema_name=schema), ServerSettings()))
    try:
        store.initialise()
        build_demo(store, scale=SCALE, seed=SEED)
        assert fingerprint(read_city(store)) == fingerprint(city)
    finally:
        store.close()
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


# -- the command ----------------------------------------------------------------------------------


def test_cli_builds_reports_and_refuses_to_rebuild(tmp_path):
    from gis.demo.cli import demo

    url = f"gpkg:///{tmp_path / 'cli' / 'city.gpkg'}"
    result = CliRunner().invoke(demo, ["--scale", str(SCALE), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "population" in result.output and "built in" in result.output
    again = CliRunner().invoke(demo, ["--scale", str(SCALE), "--database-url", url])
    assert again.exit_code == 0 and "--force" in again.output


def test_cli_unreachable_database_says_what_to_do():
    from gis.demo.cli import demo

    result = CliRunner().invoke(demo, ["--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "Next:" in result.output
