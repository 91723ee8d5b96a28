"""City-wide heatmap cells shared by the worker processes of one host, through the tile cache's directory.

Each worker keeps the city's cells per resolution and data version in memory (tiles.heatmap.cells).
Built apart, N workers ran N copies of the same city-wide GROUP BY when they started and after every
write (one per resolution: 40-220 ms of database time each on the scale-1 city). Here the first
process to need a key builds it while holding a lock on the key's lock file; the others wait for
it and read its file (about a millisecond). A file is named by a hash of everything the cells
depend on (the store, the heatmap's definition, resolution, suppression) and one of the layer's
data state; a newer state's file replaces the older ones. Written to a temporary name and renamed,
so a reader never sees half a file; one that cannot be read is built again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tiles.heatmap.cells import CityCells, Rows


class SharedCells:
    def __init__(self, directory: Path, scope: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.scope = scope  # the store the cells come from: one cache directory may outlive a store
        self.loaded = 0  # cells read from another process's file (for tests and curious operators)

    def fetch(self, parts: tuple, state: tuple, build: Callable[[], CityCells]) -> CityCells:
        """The cells of key `parts` for the layer's data `state` (its version and the time of its last
        write: a rebuilt store restarts its versions, not its clock), built here or read."""
        stem = _digest((self.scope, parts))
        path = self.directory / f"{stem}.{_digest(state)}.npz"
        with open(self.directory / f"{stem}.lock", "a+b") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)  # one builder per key on this host; the others wait here
            try:
                found = _load(path)
                if found is not None:
                    self.loaded += 1
                    return found
                cells = build()
                _save(path, cells)
                for other in self.directory.glob(f"{stem}.*.npz"):  # other states of the key: gone by
                    if other != path:
                        other.unlink(missing_ok=True)
                return cells
            finally:
                fcntl.lockf(lock, fcntl.LOCK_UN)


def _digest(value) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def _save(path: Path, cells: CityCells) -> None:
    rows = cells.rows
    arrays = {"cell": rows.cell, "count": rows.count, "lon": cells.lon, "lat": cells.lat,
              "groups": np.array([cells.suppressed_groups], dtype=np.int64)}
    if rows.total is not None:
        arrays["total"] = rows.total
    if cells.suppressed_value is not None:
        arrays["value"] = np.array([cells.suppressed_value], dtype=np.float64)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        np.savez(out, **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> CityCells | None:
    try:
        with np.load(path) as data:
            total = data["total"] if "total" in data else None
            value = float(data["value"][0]) if "value" in data else None
            rows = Rows(data["cell"], data["count"], total)
            return CityCells(rows, data["lon"], data["lat"], int(data["groups"][0]), value)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # missing, or unreadable: built again
        return None
