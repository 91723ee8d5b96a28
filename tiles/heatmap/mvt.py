"""A small MVT (Mapbox Vector Tile 2.1) writer for hexagon layers: polygons with integer vertices.

mapbox_vector_tile spends most of a heatmap tile's time building shapely objects and checking
winding per feature; hexagons need neither, so this writes the protobuf directly. Rings arrive
in tile units (y down, integers); an exterior ring is written clockwise on screen (positive
area by the shoelace formula in y-down units), as the specification requires.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

_MOVE_TO, _LINE_TO, _CLOSE = 1, 2, 7


def _varint(value: int, out: bytearray) -> None:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 values as two's complement, as protobuf does
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    _varint(value, out)
    return bytes(out)


# a tile's features are many and alike: their small varints and tag runs are looked up, not encoded
_SMALL = [_varint_bytes(v) for v in range(1 << 14)]
_SMALL_N = len(_SMALL)


def _key(field: int, wire: int, out: bytearray) -> None:
    _varint((field << 3) | wire, out)


def _bytes(field: int, payload: bytes | bytearray, out: bytearray) -> None:
    _key(field, 2, out)
    _varint(len(payload), out)
    out += payload


def _zigzag(v: int) -> int:
    return (v << 1) ^ (v >> 63)


def ring_commands(ring) -> list[int]:
    """Geometry commands of one ring of integer points (closing point optional), or [] when it
    collapses below one square unit. Reversed when needed so that it winds clockwise on screen.
    Plain Python: rings cut by a tile edge are few and short, where numpy's per-call cost shows."""
    pts = [(int(x), int(y)) for x, y in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]  # no zero-length segments
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    if len(pts) < 3:
        return []
    twice_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))
    if abs(twice_area) < 2:  # under one square unit: dropped, as Wagyu drops such rings
        return []
    if twice_area < 0:
        pts.reverse()
    x0, y0 = pts[0]
    commands = [(_MOVE_TO & 7) | (1 << 3), _zigzag(x0), _zigzag(y0), (_LINE_TO & 7) | ((len(pts) - 1) << 3)]
    for x, y in pts[1:]:
        commands += (_zigzag(x - x0), _zigzag(y - y0))
        x0, y0 = x, y
    commands.append((_CLOSE & 7) | (1 << 3))
    return commands


def encode_commands(commands: list[int]) -> bytes:
    if max(commands, default=0) < _SMALL_N:  # always, for points within a tile's buffer
        return b"".join([_SMALL[c] for c in commands])
    out = bytearray()
    for c in commands:
        _varint(c, out)
    return bytes(out)


def varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Non-negative integers as consecutive varints, and where each one ends in the bytes."""
    rest = values.astype(np.uint64)
    groups = np.zeros((len(rest), 10), dtype=np.uint8)
    count = np.ones(len(rest), dtype=np.int64)
    for i in range(10):
        groups[:, i] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest = rest >> np.uint64(7)
        more = rest > 0
        if not more.any():
            break
        groups[more, i] |= 0x80
        count += more
    data = groups[np.arange(10) < count[:, None]].tobytes()
    return data, np.cumsum(count)


_NEXT = [1, 2, 3, 4, 5, 0]  # each vertex's successor around a six-vertex ring


def hexagon_geometries(rings: np.ndarray) -> list[bytes]:
    """Encoded geometry of many rings of six distinct integer vertices each, (n, 6, 2), all
    at once: b"" for a ring under one square unit."""
    n = len(rings)
    if not n:
        return []
    pts = rings.astype(np.int64)
    x, y = pts[:, :, 0], pts[:, :, 1]
    twice_area = (x * y[:, _NEXT] - x[:, _NEXT] * y).sum(axis=1)
    pts = np.where((twice_area < 0)[:, None, None], pts[:, ::-1, :], pts)  # clockwise on screen
    deltas = np.diff(pts, axis=1).reshape(n, -1)
    zig = lambda v: (v << 1) ^ (v >> 63)  # noqa: E731
    commands = np.empty((n, 15), dtype=np.int64)
    commands[:, 0] = (_MOVE_TO & 7) | (1 << 3)
    commands[:, 1:3] = zig(pts[:, 0, :])
    commands[:, 3] = (_LINE_TO & 7) | (5 << 3)
    commands[:, 4:14] = zig(deltas)
    commands[:, 14] = (_CLOSE & 7) | (1 << 3)
    data, ends = varints(commands.reshape(-1))
    ends = ends.reshape(n, 15)[:, -1]
    starts = np.concatenate([[0], ends[:-1]])
    return [data[s:e] if abs(a) >= 2 else b"" for s, e, a in zip(starts.tolist(), ends.tolist(), twice_area.tolist())]


def value_field(value) -> bytes:
    """One Value message, wrapped as a layer's `values` field (4)."""
    inner = bytearray()
    if isinstance(value, str):
        _bytes(1, value.encode(), inner)
    elif isinstance(value, bool):
        _key(7, 0, inner)
        _varint(int(value), inner)
    elif isinstance(value, int):
        _key(4, 0, inner)
        _varint(value, inner)
    else:
        _key(3, 1, inner)
        inner += struct.pack("<d", float(value))
    out = bytearray()
    _bytes(4, inner, out)
    return bytes(out)


_POLYGON = _SMALL[(3 << 3) | 0] + _SMALL[3]
_tag_runs: dict[int, list[bytes]] = {}


def _tags(width: int, n: int) -> list[bytes]:
    """The encoded tags field of features 0..n-1 of a layer whose features all carry `width`
    values of their own: feature i's tags are (k, i * width + k) for each key k."""
    runs = _tag_runs.setdefault(width, [])
    for i in range(len(runs), n):
        tags = bytearray()
        for k in range(width):
            _varint(k, tags)
            _varint(i * width + k, tags)
        runs.append(_SMALL[(2 << 3) | 2] + _SMALL[len(tags)] + bytes(tags))
    return runs


def _length(n: int) -> bytes:
    return _SMALL[n] if n < _SMALL_N else _varint_bytes(n)


def id_field(fid: int) -> bytes:
    """A feature's id field (1), encoded: once per cell, not once per tile it appears in."""
    return _SMALL[(1 << 3) | 0] + _length(fid)


def layer(name: str, keys: Sequence[str], features: Sequence[tuple[bytes, bytes, bytes]], extent: int) -> bytes:
    """One MVT layer, wrapped as a Tile's layer field. Features are (encoded id field, encoded
    values, encoded polygon geometry); each feature has its own value for every key, in the keys'
    order, so its tags are (key k, value n * len(keys) + k) and no table lookup is needed."""
    body = bytearray()
    _key(15, 0, body)
    _varint(2, body)
    _bytes(1, name.encode(), body)
    tags = _tags(len(keys), len(features))
    geometry_key, feature_key = _SMALL[(4 << 3) | 2], _SMALL[(2 << 3) | 2]
    for n, (fid, _, geometry) in enumerate(features):
        feature = b"".join((fid, tags[n], _POLYGON, geometry_key, _length(len(geometry)), geometry))
        body += feature_key
        body += _length(len(feature))
        body += feature
    for k in keys:
        _bytes(3, k.encode(), body)
    for _, values, _ in features:
        body += values
    _key(5, 0, body)
    _varint(extent, body)
    out = bytearray()
    _bytes(3, body, out)
    return bytes(out)
