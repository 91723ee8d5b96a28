"""Everything an edit is checked for before anything is written; each refusal names the problem.

A GeoJSON feature (create, replace) or a JSON merge patch (update) becomes a shapely geometry in
EPSG:4490 and attribute values of the types the layer declares, or an `Invalid` with a message
the client can act on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import shape

from gis import crs
from gis.catalog import AttrType, Layer

MAX_STRING = 10_000
# how far outside the city's extent (every layer's, in degrees) an edit may still land:
# about 5 km, room for a new suburb but not for swapped or projected coordinates
EXTENT_MARGIN = 0.05


class Invalid(ValueError):
    """An edit that cannot be written; `status` is 400, or 403 for what the caller may not change."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Edit:
    geometry: shapely.Geometry | None  # EPSG:4490 lon/lat; None: unchanged (patch)
    values: dict[str, object]  # attribute name → typed value (None to clear)
    repaired: str | None = None  # why the geometry was repaired, when the layer allows it


def parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise Invalid(f"the body is not valid JSON: {err}") from None


def content_crs(header: str | None) -> str:
    """The CRS the body's coordinates are in (Part 4 `Content-Crs`, `<uri>` or a bare URI)."""
    if header is None or not header.strip():
        return crs.CRS84
    uri = header.strip().removeprefix("<").removesuffix(">").strip()
    if uri not in crs.SUPPORTED_CRS:
        raise Invalid(f"Content-Crs {uri[:100]!r} is not supported; use one of {', '.join(crs.SUPPORTED_CRS)}")
    return uri


def feature(
    body: object, layer: Layer, crs_uri: str, city: tuple[float, float, float, float] | None, item_id: int | None,
    required: frozenset[str] | None = None,
) -> Edit:
    """A whole feature (POST, PUT): a geometry and every required attribute (or those of `required`,
    where the server sets the rest, as for a reported case)."""
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise Invalid('the body must be a GeoJSON Feature: {"type": "Feature", "geometry": ..., "properties": {...}}')
    _same_id(body.get("id"), item_id)
    if body.get("geometry") is None:
        raise Invalid(f"geometry is required: a {layer.geometry.value} in {crs_uri}")
    geometry, repaired = _geometry(body["geometry"], layer, crs_uri, city)
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise Invalid("properties must be a JSON object")
    values = _values(properties, layer, item_id)
    needed = required if required is not None else {a.name for a in layer.attributes if a.required}
    missing = [a.name for a in layer.attributes if a.name in needed and values.get(a.name) is None]
    if missing:
        raise Invalid(f"required properties missing or null: {', '.join(missing)}")
    return Edit(geometry, values, repaired)


def merge_patch(
    body: object, layer: Layer, crs_uri: str, city: tuple[float, float, float, float] | None, item_id: int
) -> Edit:
    """A JSON merge patch (RFC 7396) of a feature: `geometry` and/or some `properties`."""
    if not isinstance(body, dict):
        raise Invalid('a patch must be a JSON object: {"properties": {...}} and/or {"geometry": ...}')
    unknown = sorted(set(body) - {"type", "id", "geometry", "properties"})
    if unknown:
        raise Invalid(f"a patch may change geometry and properties only, not {', '.join(unknown)}")
    _same_id(body.get("id"), item_id)
    geometry = repaired = None
    if "geometry" in body:
        if body["geometry"] is None:
            raise Invalid("geometry cannot be removed: every feature has one")
        geometry, repaired = _geometry(body["geometry"], layer, crs_uri, city)
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise Invalid("properties must be a JSON object")
    values = _values(properties, layer, item_id)
    cleared = [name for name, value in values.items() if value is None and layer.attr(name).required]
    if cleared:
        raise Invalid(f"required properties cannot be set to null: {', '.join(cleared)}")
    if geometry is None and not values:
        raise Invalid("the patch changes nothing: give geometry and/or properties")
    return Edit(geometry, values, repaired)


def _same_id(given: object, item_id: int | None) -> None:
    # the server assigns ids on create; on replace/patch a body id must be the item's own
    if given is None or item_id is None:
        return
    if str(given) != str(item_id):
        raise Invalid(f"the body's id {str(given)[:40]!r} is not the item's id {item_id}; ids cannot change")


def _geometry(raw: object, layer: Layer, crs_uri: str, city) -> tuple[shapely.Geometry, str | None]:
    if not isinstance(raw, dict) or "type" not in raw:
        raise Invalid("geometry must be a GeoJSON geometry object with a type and coordinates")
    try:
        geometry = shape(raw)
    except Exception as err:  # shapely's messages name the bad coordinates
        raise Invalid(f"geometry cannot be read: {err}") from None
    expected = layer.geometry.value
    if geometry.geom_type == "Polygon" and expected == "MultiPolygon":
        geometry = shapely.MultiPolygon([geometry])
    if geometry.geom_type != expected:
        raise Invalid(f"{layer.id} holds {expected} geometries, not {geometry.geom_type}")
    if geometry.is_empty:
        raise Invalid("geometry is empty")
    if shapely.has_z(geometry):
        raise Invalid("geometry has a third coordinate: OneMap stores 2D geometries; send x and y only")
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        raise Invalid("geometry coordinates must be finite numbers")
    try:
        geometry = crs.transform_geometries(np.asarray([geometry], dtype=object), crs.to_storage(crs_uri))[0]
    except Exception:
        raise Invalid(f"geometry cannot be transformed from {crs_uri} to longitude/latitude") from None
    lonlat = shapely.get_coordinates(geometry)
    if not np.isfinite(lonlat).all() or not (
        (-180 <= lonlat[:, 0]).all() and (lonlat[:, 0] <= 180).all() and (-90 <= lonlat[:, 1]).all() and (lonlat[:, 1] <= 90).all()
    ):
        raise Invalid(f"geometry is not a place on Earth in {crs_uri}: check the axis order and Content-Crs")
    if city is not None:
        minx, miny, maxx, maxy = (city[0] - EXTENT_MARGIN, city[1] - EXTENT_MARGIN, city[2] + EXTENT_MARGIN, city[3] + EXTENT_MARGIN)
        gx0, gy0, gx1, gy1 = geometry.bounds
        if gx0 < minx or gy0 < miny or gx1 > maxx or gy1 > maxy:
            raise Invalid(
                f"geometry lies outside the city (lon {minx:.4f}..{maxx:.4f}, lat {miny:.4f}..{maxy:.4f} in CRS84; "
                f"it spans lon {gx0:.4f}..{gx1:.4f}, lat {gy0:.4f}..{gy1:.4f}): check the coordinates, their axis "
                "order and Content-Crs"
            )
    repaired = None
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        if not (layer.editing and layer.editing.repair):
            raise Invalid(f"geometry is not valid: {reason}")
        fixed = shapely.make_valid(geometry)
        if fixed.geom_type == "Polygon" and expected == "MultiPolygon":
            fixed = shapely.MultiPolygon([fixed])
        if fixed.geom_type != expected or fixed.is_empty:
            raise Invalid(f"geometry is not valid ({reason}) and its repair is a {fixed.geom_type}, not a {expected}")
        geometry, repaired = fixed, reason
    return geometry, repaired


def _values(properties: dict, layer: Layer, item_id: int | None) -> dict[str, object]:
    known = {a.name: a for a in layer.attributes}
    unknown = sorted(name for name in properties if name not in known and name != "id")
    if unknown:
        raise Invalid(f"{layer.id} has no properties {', '.join(unknown)}; see /collections/{layer.id}/queryables")
    if "id" in properties:
        _same_id(properties["id"], item_id)
    values: dict[str, object] = {}
    for name, raw in properties.items():
        if name == "id":
            continue
        attribute = known[name]
        # whether the caller may write it (sensitive attributes) is gis.edit.access's question
        values[name] = None if raw is None else _typed(name, attribute.type, attribute.enum, raw)
    return values


def _typed(name: str, kind: AttrType, enum: list[str] | None, raw: object):
    wrong = Invalid(f"{name} must be a {kind.value}, got {json.dumps(raw, ensure_ascii=False)[:60]}")
    if kind is AttrType.string:
        if not isinstance(raw, str):
            raise wrong
        if len(raw) > MAX_STRING:
            raise Invalid(f"{name} is longer than {MAX_STRING} characters")
        if enum and raw not in enum:
            raise Invalid(f"{name} must be one of {', '.join(enum)}, got {raw[:60]!r}")
        return raw
    if kind is AttrType.integer:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
                return int(raw)  # 3.0 from a client that writes every number as a double
            raise wrong
        if abs(raw) >= 2**63:
            raise Invalid(f"{name} is outside the 64-bit integer range")
        return raw
    if kind is AttrType.number:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise wrong
        return float(raw)
    if kind is AttrType.boolean:
        if not isinstance(raw, bool):
            raise wrong
        return raw
    if kind is AttrType.date:
        try:
            return dt.date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else _fail()
        except ValueError:
            raise Invalid(f"{name} must be a date (YYYY-MM-DD), got {str(raw)[:40]!r}") from None
    if kind is AttrType.datetime:
        try:
            value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00")) if isinstance(raw, str) else _fail()
        except ValueError:
            raise Invalid(f"{name} must be an RFC 3339 date-time, got {str(raw)[:40]!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    raise AssertionError(kind)


def _fail():
    raise ValueError
