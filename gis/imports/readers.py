"""Reading a source file into columns: GeoJSON, GeoPackage, Shapefile (plain or zipped), CSV
with coordinate columns (through GDAL, bundled in the pyogrio wheel), OpenStreetMap PBF
(gis.imports.osm).

Everything comes back column-wise (`Source`): one list per field, one shapely geometry per
record in the source's own CRS, so the mapping and the checks run over whole columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyproj
import shapely

# GDAL's CSV driver finds coordinate columns by these names (case-insensitive; * is a wildcard)
CSV_X = "x,lon,lng,long,longitude,easting,经度"
CSV_Y = "y,lat,latitude,northing,纬度"
CSV_WKT = "wkt,geometry,geom,the_geom"
OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm")


class SourceError(ValueError):
    """The file cannot be read as asked; the message says what to do instead."""


@dataclass
class Source:
    label: str  # the file (and layer) as named in messages
    fields: dict[str, list]
    geoms: np.ndarray  # shapely geometries (None where a record has none), in `crs`
    crs: pyproj.CRS | None
    keys: list[str]  # a stable key per record, the default source id (feature id, OSM type/id)
    field_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.geoms)


def kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(OSM_SUFFIXES):
        return "osm"
    if name.endswith(".csv"):
        return "csv"
    return "ogr"


def read(path: Path, source_layer: str | None = None, x: str | None = None, y: str | None = None) -> Source:
    """An OGR-readable file (not OSM: see gis.imports.osm.read)."""
    import pyogrio  # imported late: its bundled GDAL/PROJ load order matters (gis.storage.engine)

    if not path.exists():
        raise SourceError(f"{path}: no such file")
    target = str(path)
    options: dict = {}
    if kind_of(path) == "csv":
        options = dict(
            X_POSSIBLE_NAMES=x or CSV_X,
            Y_POSSIBLE_NAMES=y or CSV_Y,
            GEOM_POSSIBLE_NAMES=CSV_WKT,
            KEEP_GEOM_COLUMNS="NO",
            AUTODETECT_TYPE="YES",
            EMPTY_STRING_AS_NULL="YES",
        )
    elif path.suffix.lower() == ".zip":
        target = f"/vsizip/{path}"
    try:
        layers = pyogrio.list_layers(target)
    except Exception as err:
        raise SourceError(f"{path}: not a file GDAL can read ({_first_line(err)}); "
                          "use GeoJSON, GeoPackage, Shapefile (or a .zip of one), CSV or .osm.pbf") from None
    names = [str(row[0]) for row in layers]
    if source_layer is None:
        spatial = [str(row[0]) for row in layers if row[1] is not None] or names
        if len(spatial) > 1:
            raise SourceError(f"{path} holds several layers ({', '.join(spatial)}): choose one with --source-layer")
        if not spatial:
            raise SourceError(f"{path} holds no layer")
        source_layer = spatial[0]
    elif source_layer not in names:
        raise SourceError(f"{path} has no layer {source_layer!r}; it has {', '.join(names)}")
    try:
        # GDAL's columnar (Arrow) read: the values stay in GDAL's buffers until a column is asked
        # for as a whole; the row reader made a Python object per cell inside GDAL's loop
        # (200,000 points with 8 text fields: 1.5-2.0 s against 0.12 s, 0.3 s more for the lists)
        meta, table = pyogrio.raw.read_arrow(
            target, layer=source_layer, return_fids=True, datetime_as_string=True, **options
        )
    except Exception as err:
        raise SourceError(f"{path}: GDAL could not read layer {source_layer!r}: {_first_line(err)}") from None
    names = [str(n) for n in meta["fields"]]
    # the columns are [FID, *fields, geometry]: taken by position, as a field may share the FID's name
    if table.num_columns < len(names) + 2:
        raise SourceError(
            f"{path}: no geometry found; a CSV needs coordinate columns (named like {CSV_X.split(',')[1]}/"
            f"{CSV_Y.split(',')[1]}, or give --x-field/--y-field) or a WKT column named {CSV_WKT.split(',')[0]}"
        )
    # as a list, not to_numpy(): pyarrow imports pandas for that (0.3 s of every load)
    wkbs = np.array(table.column(table.num_columns - 1).to_pylist(), dtype=object)
    geoms = shapely.from_wkb(wkbs, on_invalid="ignore")
    fields = {name: table.column(i + 1).to_pylist() for i, name in enumerate(names)}
    fids = table.column(0).to_pylist()
    crs = pyproj.CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    label = path.name if len(layers) == 1 else f"{path.name}:{source_layer}"
    return Source(label, fields, geoms, crs, list(map(str, fids)), names)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
