"""MVT encoding for the Python renderer: whole layers at once, geometry commands built in numpy.

Writes what `mapbox_vector_tile.encode(..., y_coord_down=True, check_winding_order=True)` writes
for the geometries render_python hands over (already in integer tile units, valid): polygons
oriented (exterior positive area in tile units, holes negative), rings without their closing
point, repeated points skipped, a ring left with no segment dropped (and a polygon whose exterior
went with it), the command cursor carried across a feature's parts; attribute keys and values
shared per layer in order of first use (1 and 1.0 are one value, True another), as that encoder
does. The library spends a Python call per coordinate and per attribute; a dense z14 tile of
buildings took most of its render time there.
"""

from __future__ import annotations

import struct

import numpy as np
import shapely

_MOVE_TO, _LINE_TO, _CLOSE = 1, 2, 7
_POINT, _LINESTRING, _POLYGON = 1, 2, 3


_SMALL = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    value &= (1 << 64) - 1  # negative int64 as protobuf writes it: ten bytes of two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes of non-negative integers < 2**35, and each value's byte count."""
    v = values.astype(np.uint64)
    sizes = np.ones(len(v), dtype=np.int64)
    for k in range(1, 5):
        sizes += v >= np.uint64(1 << (7 * k))
    width = int(sizes.max()) if len(v) else 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    grid = ((v[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    more = np.arange(width)[None, :] < (sizes[:, None] - 1)
    grid |= (more * 0x80).astype(np.uint8)
    return grid[np.arange(width)[None, :] < sizes[:, None]], sizes


def _zigzag(d: np.ndarray) -> np.ndarray:
    return (d << 1) ^ (d >> 63)


def _point_commands(geoms: np.ndarray):
    """Per feature: MoveTo(n) and its points (a Point is a MultiPoint of one)."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    xy = np.rint(shapely.get_coordinates(parts)).astype(np.int64)
    counts = np.bincount(owner, minlength=len(geoms))
    return _relative_runs(xy, owner, len(geoms)), counts


def _relative_runs(xy: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """zigzagged deltas of each point from the previous one of its feature (the first from 0,0)."""
    prev = np.zeros_like(xy)
    prev[1:] = xy[:-1]
    first = np.ones(len(xy), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    prev[first] = 0
    return _zigzag(xy - prev)


def _ring_commands(rings: np.ndarray, ring_owner: np.ndarray, closed: bool, n_features: int):
    """Command integers per feature for rings (closed) or lines; returns (ints, feature of each int)."""
    coords, cindex = shapely.get_coordinates(rings, return_index=True)
    xy = np.rint(coords).astype(np.int64)
    nring = len(rings)
    start = np.searchsorted(cindex, np.arange(nring))
    end = np.append(start[1:], len(cindex))
    keep = np.ones(len(xy), dtype=bool)
    if closed:
        keep[end[end > start] - 1] = False  # the closing point: ClosePath stands for it
    same = np.zeros(len(xy), dtype=bool)
    same[1:] = (xy[1:] == xy[:-1]).all(axis=1) & (cindex[1:] == cindex[:-1])
    keep &= ~same
    kept_per_ring = np.bincount(cindex[keep], minlength=nring)
    ring_ok = kept_per_ring >= 2  # a MoveTo and at least one LineTo
    return xy, cindex, keep, ring_ok


def _polygon_geometry(geoms: np.ndarray):
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    parts = shapely.orient_polygons(parts, exterior_cw=False)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, cindex, keep, ring_ok = _ring_commands(rings, None, True, len(geoms))
    # a polygon whose exterior ring dropped out is dropped whole
    first_ring = np.ones(len(rings), dtype=bool)
    first_ring[1:] = ring_part[1:] != ring_part[:-1]
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[ring_part[first_ring]] = ring_ok[first_ring]
    ring_ok &= part_ok[ring_part]
    return _assemble(xy, cindex, keep, ring_ok, part_owner[ring_part], True, len(geoms))


def _line_geometry(geoms: np.ndarray):
    lines, owner = shapely.get_parts(geoms, return_index=True)
    xy, cindex, keep, ring_ok = _ring_commands(lines, None, False, len(geoms))
    return _assemble(xy, cindex, keep, ring_ok, owner, False, len(geoms))


def _assemble(xy, cindex, keep, ring_ok, ring_owner, closed: bool, n_features: int):
    """[MoveTo, dx, dy, LineTo(n-1), pairs…, (ClosePath)] per kept ring, deltas running per feature."""
    keep = keep & ring_ok[cindex]
    pts = xy[keep]
    ring = cindex[keep]
    owner = ring_owner[ring]
    zz = _relative_runs(pts, owner, n_features)
    rings_kept = np.flatnonzero(ring_ok)
    n = np.bincount(ring, minlength=len(ring_ok))[rings_kept]
    length = 2 * n + 2 + (1 if closed else 0)
    offsets = np.concatenate([[0], np.cumsum(length)])
    out = np.zeros(int(offsets[-1]), dtype=np.int64)
    s = offsets[:-1]
    out[s] = (1 << 3) | _MOVE_TO
    out[s + 3] = ((n - 1) << 3) | _LINE_TO
    if closed:
        out[s + length - 1] = (1 << 3) | _CLOSE
    # position of each kept point: its ring's start, then 1 for the first point, 4 + 2(k-1) after
    ring_pos = np.searchsorted(rings_kept, ring)
    first = np.ones(len(ring), dtype=bool)
    first[1:] = ring[1:] != ring[:-1]
    k = np.arange(len(ring)) - np.maximum.accumulate(np.where(first, np.arange(len(ring)), 0))
    at = s[ring_pos] + np.where(k == 0, 1, 2 + 2 * k)
    out[at] = zz[:, 0]
    out[at + 1] = zz[:, 1]
    feature_of_int = np.repeat(ring_owner[rings_kept], length)
    return out, feature_of_int


def _geometry(geoms: np.ndarray, kind: int):
    if kind == _POINT:
        zz, counts = _point_commands(geoms)
        # per feature: MoveTo(count), then its points' pairs
        owners = np.flatnonzero(counts)
        length = 1 + 2 * counts[owners]
        offsets = np.concatenate([[0], np.cumsum(length)])
        out = np.zeros(int(offsets[-1]), dtype=np.int64)
        out[offsets[:-1]] = (counts[owners] << 3) | _MOVE_TO
        mask = np.ones(len(out), dtype=bool)
        mask[offsets[:-1]] = False
        out[mask] = zz.reshape(-1)
        return out, np.repeat(owners, length)
    if kind == _POLYGON:
        return _polygon_geometry(geoms)
    return _line_geometry(geoms)


def _kind(geom) -> int:
    t = geom.geom_type
    if t in ("Point", "MultiPoint"):
        return _POINT
    if t in ("LineString", "MultiLineString"):
        return _LINESTRING
    return _POLYGON


def _field(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    return (bytes((tag, n)) if n < 128 else bytes((tag,)) + _varint(n)) + payload


def _value_message(v) -> bytes:
    if isinstance(v, bool):
        return b"\x38" + (b"\x01" if v else b"\x00")
    if isinstance(v, str):
        return _field(0x0A, v.encode())
    if isinstance(v, int):
        return b"\x20" + _varint(v)
    return b"\x19" + struct.pack("<d", v)


def encode_layer(name: str, features: list[dict], extent: int) -> bytes:
    """One MVT layer message (with its tag and length: tiles concatenate layers)."""
    geoms = np.array([f["geometry"] for f in features], dtype=object)
    live = ~shapely.is_missing(geoms)
    live[live] &= ~shapely.is_empty(geoms[live])
    kinds = np.array([_kind(g) if ok else 0 for g, ok in zip(geoms, live)], dtype=np.int64)
    commands: list[np.ndarray | None] = [None] * len(features)
    for kind in (_POINT, _LINESTRING, _POLYGON):
        chosen = np.flatnonzero(kinds == kind)
        if not len(chosen):
            continue
        ints, owner = _geometry(geoms[chosen], kind)
        if not len(ints):
            continue
        data, sizes = _varints(ints)
        ends = np.cumsum(sizes)
        bounds = np.searchsorted(owner, np.arange(len(chosen) + 1))
        byte_bounds = np.concatenate([[0], ends])[bounds]
        raw = data.tobytes()
        for j, i in enumerate(chosen):
            if bounds[j + 1] > bounds[j]:
                commands[i] = raw[byte_bounds[j] : byte_bounds[j + 1]]

    keys: dict[str, int] = {}
    values: dict = {}
    bools: dict = {}
    value_msgs: list[bytes] = []
    out = [_field(0x0A, name.encode())]
    for f, geometry, kind in zip(features, commands, kinds):
        if geometry is None:
            continue
        tags = []
        for k, v in (f.get("properties") or {}).items():
            if not isinstance(k, str) or not isinstance(v, (str, bool, int, float)):
                continue
            ki = keys.get(k)
            if ki is None:
                ki = keys[k] = len(keys)
            seen = bools if isinstance(v, bool) else values
            vi = seen.get(v)
            if vi is None:
                vi = seen[v] = len(value_msgs)
                value_msgs.append(_value_message(v))
            tags += (ki, vi)
        fid = f.get("id")
        msg = b"\x08" + _varint(fid) if isinstance(fid, int) and fid >= 0 else b""
        if tags:
            msg += _field(0x12, bytes(tags) if max(tags) < 128 else b"".join(map(_varint, tags)))
        msg += bytes((0x18, int(kind))) + _field(0x22, geometry)
        out.append(_field(0x12, msg))
    out += [_field(0x1A, k.encode()) for k in keys]
    out += [_field(0x22, v) for v in value_msgs]
    out.append(b"\x28" + _varint(extent) + b"\x78\x02")
    return _field(0x1A, b"".join(out))
