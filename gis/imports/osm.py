"""OpenStreetMap PBF (or XML) through pyosmium: the objects one layer's mapping section selects.

A section of the mapping file (data/osm-mapping.yml) says which objects belong to a layer:

    from: [node, area]          # nodes as points, closed ways and multipolygons as areas
    select:                     # any entry may match; inside one, every tag must match
      - {amenity: [school, hospital]}
      - {shop: mall}
      - {building: "*"}         # "*": the tag is present with any value

Areas become the layer's geometry: their representative point for a Point layer, each outer
part as its own feature (`way/42#2`) for a Polygon layer. Every record's fields are its tags plus
`osm_type`, `osm_id`; its key (the default source id) is `osm_type/osm_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyproj
import shapely

from gis.imports.readers import Source, SourceError

KINDS = {"node", "area"}


def selector(section: Mapping) -> Callable[[Mapping[str, str]], bool]:
    rules = section.get("select")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) and r for r in rules):
        raise SourceError("an OSM mapping section needs `select`: a list of tag conditions like {amenity: school}")
    compiled = []
    for rule in rules:
        compiled.append(
            [(str(k), None if v == "*" else {str(x) for x in (v if isinstance(v, list) else [v])}) for k, v in rule.items()]
        )

    def matches(tags: Mapping[str, str]) -> bool:
        for rule in compiled:
            if all(k in tags and (allowed is None or tags[k] in allowed) for k, allowed in rule):
                return True
        return False

    return matches


def read(path: Path, section: Mapping, geometry: str, progress: Callable[[int], None] | None = None) -> Source:
    """The objects `section` selects, shaped for a layer of `geometry` (Point, Polygon...)."""
    import osmium

    if not path.exists():
        raise SourceError(f"{path}: no such file")
    kinds = set(section.get("from", ["node", "area"]))
    if not kinds <= KINDS:
        raise SourceError(f"`from` may list {', '.join(sorted(KINDS))}; got {sorted(kinds)}")
    matches = selector(section)
    keys_of_interest = sorted({k for rule in section["select"] for k in rule})
    wkb = osmium.geom.WKBFactory()
    rows: list[dict] = []
    keys: list[str] = []
    geoms: list = []
    processor = osmium.FileProcessor(str(path)).with_locations()
    if "area" in kinds:
        processor = processor.with_areas()
    processor = processor.with_filter(osmium.filter.KeyFilter(*keys_of_interest))
    seen = 0
    try:
        for obj in processor:
            seen += 1
            if progress and seen % 10_000 == 0:
                progress(seen)
            tags = {t.k: t.v for t in obj.tags}
            if not matches(tags):
                continue
            if obj.is_node() and "node" in kinds:
                if not obj.location.valid():
                    continue
                shape = shapely.from_wkb(bytes.fromhex(wkb.create_point(obj)))
                kind, ident = "node", obj.id
            elif obj.is_area() and "area" in kinds:
                try:
                    shape = shapely.from_wkb(bytes.fromhex(wkb.create_multipolygon(obj)))
                except RuntimeError:  # an area osmium could not assemble has no geometry to load
                    continue
                kind, ident = ("way" if obj.from_way() else "relation"), obj.orig_id()
            else:
                continue
            for part_no, part in enumerate(_shaped(shape, geometry), start=1):
                key = f"{kind}/{ident}" if part_no == 1 else f"{kind}/{ident}#{part_no}"
                rows.append({**tags, "osm_type": kind, "osm_id": ident})
                keys.append(key)
                geoms.append(part)
    except RuntimeError as err:
        raise SourceError(f"{path}: not an OpenStreetMap file osmium can read ({err})") from None
    names = sorted({k for row in rows for k in row})
    fields = {name: [row.get(name) for row in rows] for name in names}
    return Source(path.name, fields, np.array(geoms, dtype=object), pyproj.CRS.from_epsg(4326), keys, names)


def _shaped(shape, geometry: str) -> list:
    kind = shape.geom_type
    if geometry == "Point":
        return [shape if kind == "Point" else shapely.point_on_surface(shape)]
    if geometry == "Polygon" and kind == "MultiPolygon":
        return list(shape.geoms)
    return [shape]
