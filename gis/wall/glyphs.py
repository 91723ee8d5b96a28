"""Signed-distance-field glyphs for MapLibre labels, made from a font on this machine.

MapLibre draws text from glyph ranges (`/fonts/{fontstack}/{start}-{end}.pbf`, 256 code points
each) that it fetches from the style's `glyphs` URL. OneMap renders them itself from a font
Debian ships (WenQuanYi Micro Hei: Latin and CJK in one file), so labels in Chinese work on a
network with no way out. Each range is rasterised with FreeType (through Pillow) once per process
and kept; the bytes are the protobuf MapLibre expects (the same layout as fontnik's output).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import ImageFont

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
FONT_PACKAGE = "fonts-wqy-microhei"
FONTSTACK = "WenQuanYi Micro Hei"
SIZE = 24  # MapLibre's glyph em size
BUFFER = 3  # pixels of distance field around each glyph bitmap
RADIUS = 8.0  # distance (px) the field spans; MapLibre's shaders assume 8
CUTOFF = 0.25  # the glyph's edge sits at 1 - CUTOFF = 0.75 of 255


class FontMissing(RuntimeError):
    pass


def find_font() -> Path:
    for path in FONT_CANDIDATES:
        if path.exists():
            return path
    raise FontMissing(f"no CJK font found; install Debian's {FONT_PACKAGE} (make run does: scripts/ensure-system run)")


class Glyphs:
    """Glyph ranges of one font, made on first request and kept for the life of the process."""

    def __init__(self, font_path: Path | None = None):
        self.font_path = font_path or find_font()
        self._font = ImageFont.truetype(str(self.font_path), SIZE, layout_engine=ImageFont.Layout.BASIC)
        self._lock = threading.Lock()  # FreeType faces are not thread-safe
        self._notdef = self._signature(0xE000)  # a private-use point: what the font draws for "missing"
        self.range = lru_cache(maxsize=512)(self._range)

    def _signature(self, codepoint: int) -> tuple[bytes, tuple[int, int], float]:
        mask, offset = self._font.getmask2(chr(codepoint), mode="L")
        return bytes(mask), mask.size, self._font.getlength(chr(codepoint))

    def _range(self, start: int) -> bytes:
        """The protobuf of code points start..start+255 (start a multiple of 256)."""
        if start % 256 or not 0 <= start <= 0xFF00:
            raise ValueError("a glyph range starts at a multiple of 256 up to 65280")
        with self._lock:
            drawn = [g for g in (self._draw(cp) for cp in range(start, start + 256)) if g is not None]
        fields = _sdf([coverage for _, coverage, _ in drawn])
        glyphs = []
        for (codepoint, coverage, (left, top, advance)), field in zip(drawn, fields):
            height, width = coverage.shape if field is not None else (0, 0)
            body = _varint_field(1, codepoint)
            if field is not None:
                body += _bytes(2, field.tobytes())
            body += _varint_field(3, width) + _varint_field(4, height)
            body += _varint_field(5, _zigzag(left)) + _varint_field(6, _zigzag(top))
            glyphs.append(body + _varint_field(7, advance))
        stack = _string(1, FONTSTACK) + _string(2, f"{start}-{start + 255}")
        stack += b"".join(_bytes(3, g) for g in glyphs)
        return _bytes(1, stack)

    def _draw(self, codepoint: int):
        """(code point, coverage, (left, top, advance)), or None where the font has no glyph."""
        if codepoint < 32 or 0xD800 <= codepoint <= 0xDFFF:
            return None
        char = chr(codepoint)
        mask, (left, top_offset) = self._font.getmask2(char, mode="L")
        if codepoint != 0x20 and (bytes(mask), mask.size, self._font.getlength(char)) == self._notdef:
            return None  # the font lacks it: MapLibre then leaves it out rather than draw a box
        width, height = mask.size
        coverage = np.frombuffer(bytes(mask), dtype=np.uint8).reshape(height, width) if width and height else None
        # Pillow's origin is the top-left of the line (the ascender); MapLibre's `top` is the
        # glyph's top relative to that same line, so it is minus Pillow's y offset
        return codepoint, coverage, (left, -top_offset, max(round(self._font.getlength(char)), 0))


def _sdf(coverages: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Distance fields of glyph coverages, each BUFFER pixels wider on every side.

    All glyphs of a range sit in one stack of equal canvases, and the distance to the nearest
    pixel of the other kind is found by shifting the stack by every offset that can still change
    a byte (about 150 numpy operations per range instead of a search per pixel).
    """
    present = [c for c in coverages if c is not None]
    if not present:
        return [None] * len(coverages)
    reach = int(RADIUS * (1 - CUTOFF)) + 1  # beyond this outside distance the byte is 0 anyway
    margin = BUFFER + reach + 1
    height = max(c.shape[0] for c in present) + 2 * margin
    width = max(c.shape[1] for c in present) + 2 * margin
    inside = np.zeros((len(present), height, width), dtype=bool)
    for i, coverage in enumerate(present):
        inside[i, margin : margin + coverage.shape[0], margin : margin + coverage.shape[1]] = coverage >= 128
    to_inside = np.full(inside.shape, np.float32(RADIUS), dtype=np.float32)
    to_outside = np.full(inside.shape, np.float32(RADIUS), dtype=np.float32)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            distance = np.float32((dy * dy + dx * dx) ** 0.5)
            if distance == 0 or distance > reach:
                continue
            shifted = np.roll(inside, (dy, dx), axis=(1, 2))
            np.minimum(to_inside, np.where(shifted, distance, RADIUS), out=to_inside)
            np.minimum(to_outside, np.where(shifted, RADIUS, distance), out=to_outside)
    signed = np.where(inside, -(to_outside - 0.5), to_inside - 0.5)
    values = np.clip(np.round(255.0 - 255.0 * (signed / RADIUS + CUTOFF)), 0, 255).astype(np.uint8)
    fields, i = [], 0
    for coverage in coverages:
        if coverage is None:
            fields.append(None)
            continue
        top, left = margin - BUFFER, margin - BUFFER
        fields.append(
            np.ascontiguousarray(values[i, top : top + coverage.shape[0] + 2 * BUFFER, left : left + coverage.shape[1] + 2 * BUFFER])
        )
        i += 1
    return fields


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 31)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _string(number: int, text: str) -> bytes:
    return _bytes(number, text.encode())
