"""Every row checked before anything is written: geometry, extent, attributes, source id.

`check()` turns a `Source` and its `Mapping` into the rows ready to store (typed values,
geometry in EPSG:4490 lon/lat, an H3 cell) and the rejected rows, each with every reason it was
refused, so one run of the importer tells the operator everything there is to fix.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely

from gis.catalog import AttrType, Attribute, Layer
from gis.imports.mapping import Mapping
from gis.imports.readers import Source, SourceError
from gis.storage.tables import STORAGE_SRID

WORLD = (-180.0, -90.0, 180.0, 90.0)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass
class Rejected:
    row: int  # 1-based position in the source
    source_id: str | None
    reasons: list[str]


@dataclass
class Checked:
    source_ids: list[str]
    columns: dict[str, list]  # attribute name → typed values, good rows only
    geoms: np.ndarray  # shapely, EPSG:4490 lon/lat, good rows only
    rows: list[int]  # 1-based source positions of the good rows
    rejected: list[Rejected]

    def __len__(self) -> int:
        return len(self.source_ids)


def check(
    source: Source,
    mapping: Mapping,
    crs: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Checked:
    layer = mapping.layer
    n = len(source)
    reasons: dict[int, list[str]] = {}

    def refuse(i: int, why: str) -> None:
        reasons.setdefault(i, []).append(why)

    geoms = _to_storage(source, crs or mapping.crs)
    _check_geometries(geoms, layer, extent or WORLD, refuse)
    geoms = _conformed(geoms, layer)
    if progress:
        progress(n // 4)

    columns: dict[str, list] = {}
    for attribute in layer.attributes:
        expression = mapping.attributes.get(attribute.name)
        if expression is None:
            if attribute.required:
                for i in range(n):
                    refuse(i, f"{attribute.name} is required and the mapping gives no value "
                              f"(map it: --set {attribute.name}=FIELD)")
            continue
        values, failures = expression.column(source.fields, n)
        for i, why in failures.items():
            refuse(i, f"{attribute.name}: {why}")
        columns[attribute.name] = _typed(values, attribute, failures, refuse)
    if progress:
        progress(n // 2)

    source_ids = _source_ids(source, mapping, refuse)
    if not reasons:  # every row good, the usual case: the columns as they are, not copied row by row
        return Checked(source_ids, columns, geoms, list(range(1, n + 1)), [])
    good = [i for i in range(n) if i not in reasons]
    rejected = [
        Rejected(i + 1, source_ids[i], reasons[i]) for i in sorted(reasons)
    ]
    index = np.asarray(good, dtype=np.int64)
    return Checked(
        [source_ids[i] for i in good],
        {name: [values[i] for i in good] for name, values in columns.items()},
        geoms[index] if len(good) else np.empty(0, dtype=object),
        [i + 1 for i in good],
        rejected,
    )


def _to_storage(source: Source, override: str | None) -> np.ndarray:
    if override:
        try:
            crs = pyproj.CRS.from_user_input(override)
        except pyproj.exceptions.CRSError:
            raise SourceError(f"--crs {override!r} is not a CRS pyproj knows; write it like EPSG:4549") from None
    elif source.crs is not None:
        crs = source.crs
    else:
        raise SourceError(f"{source.label} does not say its CRS: give it with --crs, e.g. --crs EPSG:4326")
    # flattened only when some geometry has a Z: force_2d copies every geometry, 3D or not
    geoms = shapely.force_2d(source.geoms) if shapely.has_z(source.geoms).any() else source.geoms
    target = pyproj.CRS.from_epsg(STORAGE_SRID)
    if crs.equals(target, ignore_axis_order=True):
        return geoms
    transformer = pyproj.Transformer.from_crs(crs, target, always_xy=True)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1], errcheck=False)
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


def _check_geometries(geoms: np.ndarray, layer: Layer, extent, refuse) -> None:
    wanted = layer.geometry.value
    accepted = {wanted, f"Multi{wanted}"} if wanted != "MultiPolygon" else {"Polygon", "MultiPolygon"}
    missing = shapely.is_missing(geoms)
    types = shapely.get_type_id(geoms)
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                      "MultiPolygon", "GeometryCollection"])
    parts = shapely.get_num_geometries(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    valid = shapely.is_valid(geoms)
    bounds = shapely.bounds(geoms)
    minx, miny, maxx, maxy = extent
    with np.errstate(invalid="ignore"):
        outside = ~(
            (bounds[:, 0] >= minx) & (bounds[:, 1] >= miny) & (bounds[:, 2] <= maxx) & (bounds[:, 3] <= maxy)
        )
    accepted_ids = [k for k, name in enumerate(names) if name in accepted]
    wrong_kind = ~np.isin(types, accepted_ids) | ((parts > 1) & (wanted != "MultiPolygon"))
    for i in np.flatnonzero(missing | empty | ~valid | outside | wrong_kind):
        if missing[i]:
            refuse(i, "no geometry")
            continue
        if empty[i]:
            refuse(i, "empty geometry")
            continue
        kind = names[types[i]]
        if kind not in accepted or (kind.startswith("Multi") and wanted != "MultiPolygon" and parts[i] > 1):
            detail = f" with {parts[i]} parts" if kind.startswith("Multi") else ""
            refuse(i, f"geometry is a {kind}{detail}; layer {layer.id} holds {wanted}s")
            continue
        if not valid[i]:
            refuse(i, f"invalid geometry: {shapely.is_valid_reason(geoms[i])}")
        if outside[i]:
            if not np.all(np.isfinite(bounds[i])):
                refuse(i, "coordinates could not be transformed to lon/lat: check the CRS (--crs)")
            else:
                b = ", ".join(f"{v:.6f}" for v in bounds[i])
                area = ", ".join(f"{v:g}" for v in extent)
                refuse(i, f"outside the city's extent: bounds {b} not within {area} (lon/lat); check the CRS (--crs)")


def _conformed(geoms: np.ndarray, layer: Layer) -> np.ndarray:
    """Single-part multis become their part; a Polygon in a MultiPolygon layer is promoted."""
    out = geoms.copy()
    wanted = layer.geometry.value
    types = shapely.get_type_id(geoms)
    if wanted == "MultiPolygon":
        polygons = np.flatnonzero((types == 3) & ~shapely.is_empty(geoms))
        out[polygons] = shapely.multipolygons(geoms[polygons][:, None]) if len(polygons) else out[polygons]
    else:
        single = np.flatnonzero((types >= 4) & (types <= 6) & (shapely.get_num_geometries(geoms) == 1))
        out[single] = shapely.get_geometry(geoms[single], 0)
    return out


def _typed(values: list, attribute: Attribute, skip: dict[int, str], refuse) -> list:
    convert = _CONVERTERS[attribute.type]
    enum = set(attribute.enum) if attribute.enum else None
    if not skip and _already(values, attribute.type) and (enum is None or set(values) <= enum):
        return values  # the common case, decided in C: every value present, of its type, allowed
    if not skip and attribute.type in (AttrType.date, AttrType.datetime):
        moments = _iso_column(values, attribute.type, attribute.required)
        if moments is not None:
            return moments
    out: list = [None] * len(values)
    for i, value in enumerate(values):
        if i in skip:
            continue
        if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value)):
            if attribute.required:
                refuse(i, f"{attribute.name} is required and is empty")
            continue
        try:
            typed = convert(value)
        except (ValueError, TypeError, OverflowError):
            refuse(i, f"{attribute.name}: {str(value)[:60]!r} is not {_ARTICLE[attribute.type]}")
            continue
        if enum is not None and typed not in enum:
            refuse(i, f"{attribute.name}: {str(typed)[:60]!r} is not one of {', '.join(attribute.enum)}")
            continue
        out[i] = typed
    return out


_NATIVE = {AttrType.string: str, AttrType.number: float, AttrType.integer: int, AttrType.boolean: bool}


def _already(values: list, kind: AttrType) -> bool:
    """Every value is already of the attribute's Python type, and none is empty or NaN."""
    native = _NATIVE.get(kind)
    if native is None or set(map(type, values)) != {native}:
        return False
    if native is str:
        return "" not in values and not any(map(str.isspace, values))
    if native is float:
        return not np.isnan(np.asarray(values, dtype=float)).any() and np.isfinite(np.asarray(values, dtype=float)).all()
    return True


def _iso_column(values: list, kind: AttrType, required: bool) -> list | None:
    """A column of ISO 8601 texts (how GDAL hands date-times out) parsed by one map(), or of dates
    (a date field), nulls kept: what _date/_datetime make of such values, without the per-value
    loop. None when any value is something else, left to the per-value path and its messages."""
    present = [v for v in values if v is not None]
    if required and len(present) < len(values):
        return None
    if kind is AttrType.date and set(map(type, present)) == {dt.date}:
        return values  # a date field, read as dates
    if set(map(type, present)) != {str}:
        return None
    if kind is AttrType.date and set(map(len, present)) != {10}:
        return None
    parse = dt.date.fromisoformat if kind is AttrType.date else dt.datetime.fromisoformat
    try:
        parsed = list(map(parse, present))
    except ValueError:
        return None
    if kind is AttrType.datetime and not all(m.tzinfo for m in parsed):
        parsed = [m if m.tzinfo else m.replace(tzinfo=dt.UTC) for m in parsed]  # as _datetime: UTC
    if len(parsed) == len(values):
        return parsed
    found = iter(parsed)
    return [None if v is None else next(found) for v in values]


def _string(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    number = float(str(value).strip())
    if not number.is_integer():
        raise ValueError
    return int(number)


def _number(value) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value if isinstance(value, (int, float)) else str(value).strip())
    if not math.isfinite(number):
        raise ValueError
    return number


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().replace("/", "-")
    return dt.date.fromisoformat(text[:10])


def _datetime(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace("/", "-"))
    # a time without a zone is taken as UTC, as the GeoPackage store writes it
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_CONVERTERS = {
    AttrType.string: _string,
    AttrType.integer: _integer,
    AttrType.number: _number,
    AttrType.boolean: _boolean,
    AttrType.date: _date,
    AttrType.datetime: _datetime,
}
_ARTICLE = {
    AttrType.string: "text",
    AttrType.integer: "an integer",
    AttrType.number: "a number",
    AttrType.boolean: "a boolean (true/false)",
    AttrType.date: "a date (YYYY-MM-DD)",
    AttrType.datetime: "a date-time (ISO 8601)",
}


def _source_ids(source: Source, mapping: Mapping, refuse) -> list[str | None]:
    n = len(source)
    if mapping.source_id is None:
        # no key given: the record's place in this file, qualified by the file's name
        return [f"{source.label}#{key}" if not source.label.endswith((".pbf", ".osm")) else key for key in source.keys]
    values, failures = mapping.source_id.column(source.fields, n)
    if not failures and _already(values, AttrType.string) and len(set(values)) == n:
        return values  # all present, all text, all different: nothing to say about any row
    ids: list[str | None] = [None] * n
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        if i in failures:
            refuse(i, f"source id: {failures[i]}")
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
            refuse(i, f"source id ({mapping.source_id.source}) is empty")
            continue
        key = _string(value)
        ids[i] = key
        if key in first:
            refuse(i, f"source id {key!r} repeats row {first[key] + 1}")
        else:
            first[key] = i
    return ids
