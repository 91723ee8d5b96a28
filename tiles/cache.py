"""Tile cache: a byte-bounded in-memory LRU in front of an MBTiles-like SQLite file on disk.

Keys are (tileset, tms, z, x, y, filter). An entry stays valid across data versions until a write
touches it: `invalidate(layer, bbox)` drops exactly the tiles whose buffered extent meets the bbox,
at every level of every grid, in every tileset carrying the layer (and every filter), from memory
and disk, before it returns. So after an edit the untouched tiles are still served from cache under
the new data version, and the touched ones are rendered again.

Several worker processes share the disk file. Each write is also appended to an invalidation log in
that file; `sync()` (run by each process every second, and at once when a request names a data
version the process has not seen) replays other processes' entries onto its memory LRU. A data
version that moved with no logged invalidation (a bulk reload) drops all of that layer's tiles, once
it has stayed unexplained for `grace` seconds: a writer commits first and invalidates right after,
so a poll landing between the two must not mistake the edit for a reload. A version that went down,
or the same version with another last-write time than the file recorded for it, is another store
behind the same cache directory (a rebuilt city): that layer's tiles go at once.

The miss path stays off the disk's write lock: rendered tiles are written behind, in batches, by
one thread per process (`DiskCache.put` queues; an invalidation logged meanwhile voids the queued
tiles, as before). Concurrent misses on one tile in different processes meet on a byte-range lock
in `tiles.locks` (`TileCache.flight`): the first renders, the others wait and read its tile from
the disk instead of running the query again.

Tiles are gzipped once, when rendered (or seeded), and stored gzipped on disk; the memory LRU holds
each tile plain and gzipped, so that answering either kind of client is a lookup (tiles.api).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gis.batches import take_batch
from tiles.matrix import BUFFER, GRIDS, Grid

BATCH_SECONDS = 0.05  # how long the disk writer gathers tiles before it commits them (< flight's wait)
Key = tuple[str, str, int, int, int, str]  # tileset, tms, z, x, y, filter
BBox = tuple[float, float, float, float]
# (written layer, tileset, grid, z, written bbox) -> the bbox whose data that tileset's tiles at z depend on
Reach = Callable[[str, str, Grid, int, BBox], BBox]


# zlib level of stored tiles, measured (bench/README.md, "Compression"): over 2,000 tiles of the bench
# list level 1 takes 0.137 ms a tile for 40.7% of the bytes, level 6 0.223 ms for 37.1%; on the
# largest (62 KB) 1.0 ms against 2.1. The cold path pays it, often on the event loop, with the CPUs
# already short (PostgreSQL's share): level 1
GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One tile both ways: plain bytes for clients that take no gzip, gzip for the others (the
    disk keeps only the gzip). Both are kept in memory so that serving one never codes anything."""

    data: bytes  # empty for an empty tile (answered 204)
    etag: str  # strong validator of the plain bytes: a hash of them, quoted
    thinned: int = 0  # budget step (tiles.generalise): 0 = all features
    gz: bytes | None = None  # the same tile gzipped (b"" when empty); made from `data` when not given
    # (ETag, Content-Length) as header bytes, plain and gzip: the warm path formats nothing per request
    wire: tuple = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.gz is None:
            object.__setattr__(self, "gz", gzip_tile(self.data))
        plain = (self.etag.encode(), str(len(self.data)).encode())
        object.__setattr__(self, "wire", (plain, (self.gz_etag.encode(), str(len(self.gz)).encode())))

    @classmethod
    def from_gzip(cls, gz: bytes, etag: str, thinned: int = 0) -> "Entry":
        return cls(zlib.decompress(gz, wbits=31) if gz else b"", etag, thinned, gz)

    @property
    def gz_etag(self) -> str:
        # another strong validator for the other encoding (RFC 9110 8.8.3): a 304 must not confirm
        # plain bytes to a client holding gzip ones; derived, so the disk keeps one ETag per tile
        return self.etag[:-1] + '-gz"'

    @property
    def size(self) -> int:
        return len(self.data) + len(self.gz) + 200  # bookkeeping overhead, so empty tiles still count


def gzip_tile(data: bytes) -> bytes:
    return zlib.compress(data, GZIP_LEVEL, wbits=31) if data else b""


class MemoryLRU:
    """Bounded by total bytes; the least recently served tiles go first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        # dict reads are atomic under the GIL; only the recency update needs the lock
        entry = self._entries.get(key)
        if entry is not None:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: Entry) -> None:
        if entry.size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[key] = entry
            self.bytes += entry.size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.size

    def drop(self, predicate: Callable[[Key], bool]) -> int:
        with self._lock:
            doomed = [k for k in self._entries if predicate(k)]
            for k in doomed:
                self.bytes -= self._entries.pop(k).size
        return len(doomed)


# A rowid table with the key in a separate index: tiles are blobs of kilobytes, and a WITHOUT ROWID
# table keeps its rows inside the key's B-tree, so every insert moved blobs around (SQLite advises
# against it for rows over ~1/20 of a page). Measured: 59 -> 24 us per stored tile, 20 -> 7 us per lookup.
_TILES = """
CREATE TABLE IF NOT EXISTS tiles (
    tileset TEXT NOT NULL, tms TEXT NOT NULL, z INTEGER NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
    filter TEXT NOT NULL, etag TEXT NOT NULL, thinned INTEGER NOT NULL, data BLOB NOT NULL, -- gzip, etag of the plain
    UNIQUE (tileset, tms, z, x, y, filter)
)"""
_SCHEMA = _TILES + """;
CREATE TABLE IF NOT EXISTS invalidations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, layer TEXT NOT NULL, version INTEGER NOT NULL,
    minx REAL, miny REAL, maxx REAL, maxy REAL
);
CREATE TABLE IF NOT EXISTS layer_versions (layer TEXT PRIMARY KEY, version INTEGER NOT NULL, stamp TEXT);
"""


def _upgrade_layout(conn: sqlite3.Connection) -> None:
    """A cache file written before the rowid layout keeps its tiles: copied over once, in one
    transaction (several workers may start at once: the first one does it, the others see it done)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='tiles'").fetchone()[0]
        if "WITHOUT ROWID" in sql.upper():
            conn.execute(_TILES.replace("CREATE TABLE IF NOT EXISTS tiles", "CREATE TABLE tiles_rowid"))
            conn.execute("INSERT INTO tiles_rowid SELECT tileset, tms, z, x, y, filter, etag, thinned, data FROM tiles")
            conn.execute("DROP TABLE tiles")
            conn.execute("ALTER TABLE tiles_rowid RENAME TO tiles")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_stamps(conn: sqlite3.Connection) -> None:
    """A cache file from before the layers' last-write stamps gets the column (empty: unknown)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(layer_versions)")}
    if "stamp" not in columns:
        try:
            conn.execute("ALTER TABLE layer_versions ADD COLUMN stamp TEXT")
        except sqlite3.OperationalError:  # another worker added it first
            pass


GZIP_FORMAT = 1  # PRAGMA user_version of a file whose tiles are stored gzipped


def _gzip_format(conn: sqlite3.Connection) -> None:
    """A cache file of plain tiles (written before they were stored gzipped) starts over: its tiles
    are dropped once (re-rendered when asked) rather than each one told apart by its first bytes."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= GZIP_FORMAT:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < GZIP_FORMAT:  # another worker may have done it
            conn.execute("DELETE FROM tiles")
            conn.execute(f"PRAGMA user_version = {GZIP_FORMAT}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class DiskCache:
    """MBTiles-like: one row per tile, in a SQLite file shared by the processes of one host."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        conn = self._conn()
        conn.executescript(_SCHEMA)
        _upgrade_layout(conn)
        _add_stamps(conn)
        _gzip_format(conn)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: Key) -> Entry | None:
        return self.lookup(key)[0]

    def lookup(self, key: Key) -> tuple[Entry | None, int]:
        """The tile if stored, and the invalidation log's last seq: one statement, one snapshot."""
        row = self._conn().execute(
            "SELECT s.m, t.data, t.etag, t.thinned FROM (SELECT coalesce(max(seq), 0) AS m FROM invalidations) s"
            " LEFT JOIN tiles t ON t.tileset=? AND t.tms=? AND t.z=? AND t.x=? AND t.y=? AND t.filter=?",
            key,
        ).fetchone()
        return (None if row[1] is None else Entry.from_gzip(bytes(row[1]), row[2], row[3])), row[0]

    def put(self, key: Key, entry: Entry, seq: int) -> None:
        """Queue for storing unless some process logs an invalidation after `seq` (the tile may be
        stale then); the writer thread stores queued tiles in batches, one transaction each."""
        self._queue.put((*key, entry.etag, entry.thinned, entry.gz, seq))
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_behind, name="tile-cache-writer", daemon=True)
                    self._writer.start()

    def flush(self) -> None:
        """Wait until every queued tile is stored (or voided by an invalidation)."""
        if self._writer is not None:
            self._queue.join()

    def _write_behind(self) -> None:
        while True:
            batch = take_batch(self._queue, 500, BATCH_SECONDS)  # a commit costs more than a tile
            try:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO tiles SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"
                        " WHERE (SELECT coalesce(max(seq), 0) FROM invalidations) = ?",
                        batch,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except Exception:  # a cache write lost costs one re-render, never a wrong tile
                pass
            finally:
                for _ in batch:
                    self._queue.task_done()

    def invalidate(
        self, layer: str, version: int, bbox: BBox | None, tilesets: Iterable[str], ranges, stamp: str | None = None
    ) -> None:
        """Log the invalidation, then delete its tiles, in one transaction: logging first voids every
        tile rendered before it that is still queued or about to be (their seq is older)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO invalidations (layer, version, minx, miny, maxx, maxy) VALUES (?, ?, ?, ?, ?, ?)",
                (layer, version, *(bbox or (None,) * 4)),
            )
            if bbox is None:
                conn.executemany("DELETE FROM tiles WHERE tileset=?", [(t,) for t in tilesets])
            else:
                conn.executemany(
                    "DELETE FROM tiles WHERE tileset=? AND tms=? AND z=? AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?",
                    [(t, g, z, x0, x1, y0, y1) for t, g, z, x0, y0, x1, y1 in ranges],
                )
            conn.execute("INSERT OR REPLACE INTO layer_versions VALUES (?, ?, ?)", (layer, version, stamp))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def log_since(self, seq: int) -> list[tuple]:
        return self._conn().execute(
            "SELECT seq, layer, version, minx, miny, maxx, maxy FROM invalidations WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()

    def last_seq(self) -> int:
        return self._conn().execute("SELECT coalesce(max(seq), 0) FROM invalidations").fetchone()[0]

    def rendered_versions(self) -> dict[str, tuple[int, str | None]]:
        """Per layer, the data version (and its last-write stamp) the stored tiles were rendered from."""
        rows = self._conn().execute("SELECT layer, version, stamp FROM layer_versions").fetchall()
        return {layer: (version, stamp) for layer, version, stamp in rows}

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM tiles").fetchone()[0]


def touched_ranges(
    tilesets: Iterable[str], bbox: tuple[float, float, float, float], reach: Callable | None = None
):
    """(tileset, tms, z, xmin, ymin, xmax, ymax) for every level of every grid: the tiles whose
    buffered extent meets the bbox (lon/lat), grown per tileset and level by `reach` where a
    tile's content depends on data beyond its extent (heatmap hexagons carry whole cells)."""
    tilesets = list(tilesets)
    for grid in GRIDS.values():
        for z in range(grid.minzoom, grid.maxzoom + 1):
            plain = grid.tile_range(z, bbox, BUFFER + 1)
            for tileset in tilesets:
                box = reach(tileset, grid, z, bbox) if reach else bbox
                x0, y0, x1, y1 = plain if box == bbox else grid.tile_range(z, box, BUFFER + 1)
                if x0 > x1 or y0 > y1:
                    continue
                yield tileset, grid.id, z, x0, y0, x1, y1


class TileCache:
    """Memory LRU over the disk cache, with bbox-exact invalidation shared between processes."""

    def __init__(
        self,
        directory: Path | None,
        memory_bytes: int = 256 * 2**20,
        reach: Reach | None = None,
        grace: float = 0.5,
    ):
        self.reach = reach
        self.memory = MemoryLRU(memory_bytes)
        self.disk = DiskCache(directory / "tiles.sqlite") if directory else None
        self._locks_path = directory / "tiles.locks" if directory else None
        self._locks_fd: int | None = None
        self._seq = self.disk.last_seq() if self.disk else 0
        self.generation = 0  # bumped by every drop: a render that saw an older one is not cached
        self._covered: dict[str, int] = {}  # per layer: the data version the cache is known to match
        self.grace = grace
        self._unexplained: dict[tuple[str, int], float] = {}  # (layer, version) -> first seen, monotonic
        self._lock = threading.RLock()  # invalidate and sync run in different threads
        # for /metrics (gis.app.metrics): a hit is a tile served from memory or disk, a miss one
        # that had to be rendered; plain ints, a lost increment under a race costs nothing
        self.hits = 0
        self.misses = 0

    def _reach(self, layer: str):
        if self.reach is None:
            return None
        return lambda tileset, grid, z, bbox: self.reach(layer, tileset, grid, z, bbox)

    def get_memory(self, key: Key) -> Entry | None:
        entry = self.memory.get(key)
        if entry is not None:
            self.hits += 1
        return entry

    def get(self, key: Key) -> Entry | None:
        """Memory, then disk; a None here means the tile is rendered next (a miss)."""
        return self.lookup(key)[0]

    def lookup(self, key: Key) -> tuple[Entry | None, tuple[int, int]]:
        """The cached tile (memory, then disk) or None (a miss: rendered next), and the token that
        proves, handed back to `put`, that no invalidation came in between."""
        generation = self.generation
        entry = self.memory.get(key)
        seq = 0
        if entry is None and self.disk is not None:
            entry, seq = self.disk.lookup(key)
            if entry is not None:
                self.memory.put(key, entry)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry, (generation, seq)

    def token(self) -> tuple[int, int]:
        """Taken before rendering, handed back to `put`: proves no invalidation came in between."""
        return self.generation, (self.disk.last_seq() if self.disk else 0)

    def put(self, key: Key, entry: Entry, token: tuple[int, int]) -> None:
        if token[0] != self.generation:
            return
        self.memory.put(key, entry)
        if self.disk is not None:
            self.disk.put(key, entry, token[1])

    def flush(self) -> None:
        if self.disk is not None:
            self.disk.flush()

    @contextlib.contextmanager
    def flight(self, key: Key, wait: float = 0.25, block: bool = True):
        """Single-flight across the processes sharing the disk cache. Yields the tile another
        process rendered while this one waited for it, or None: render it (the lock is held).
        With block=False it yields False at once when another process holds the tile's lock."""
        if self._locks_path is None:
            yield None
            return
        if self._locks_fd is None:
            self._locks_fd = os.open(self._locks_path, os.O_RDWR | os.O_CREAT, 0o644)
        # a stable hash (Python's is salted per process) picks one byte of 2**24 to lock (beyond the
        # file's end is fine): two tiles in flight at once almost never share one
        slot = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest()) % (1 << 24)
        found = None
        try:
            fcntl.lockf(self._locks_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        except OSError:  # another process renders this tile (or one sharing its slot): wait for it
            if not block:
                yield False
                return
            fcntl.lockf(self._locks_fd, fcntl.LOCK_EX, 1, slot)
            deadline = time.monotonic() + wait
            while found is None and self.disk is not None:
                found, _ = self.disk.lookup(key)  # written behind: give the writer a moment
                if found is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            if found is not None:
                self.memory.put(key, found)
        try:
            yield found
        finally:
            fcntl.lockf(self._locks_fd, fcntl.LOCK_UN, 1, slot)

    def _drop_memory_ranges(self, ranges) -> None:
        self.generation += 1
        index: dict[tuple[str, str, int], tuple[int, int, int, int]] = {
            (t, g, z): (x0, y0, x1, y1) for t, g, z, x0, y0, x1, y1 in ranges
        }

        def touched(key: Key) -> bool:
            box = index.get(key[:3])
            return box is not None and box[0] <= key[3] <= box[2] and box[1] <= key[4] <= box[3]

        self.memory.drop(touched)

    def invalidate(
        self,
        layer: str,
        tilesets: list[str],
        bbox: tuple[float, float, float, float] | None,
        version: int,
        stamp: str | None = None,
    ) -> None:
        """Drop the tiles a write to `layer` inside `bbox` (lon/lat; None = everywhere) may change;
        `stamp` is the layer's last-write time at `version`."""
        with self._lock:
            ranges = None
            if bbox is None:
                self.generation += 1
                self.memory.drop(lambda key: key[0] in tilesets)
            else:
                ranges = list(touched_ranges(tilesets, bbox, self._reach(layer)))
                self._drop_memory_ranges(ranges)
            if self.disk is not None:
                self.disk.invalidate(layer, version, bbox, tilesets, ranges, stamp)
            self._covered[layer] = max(version, self._covered.get(layer, 0))

    def covered(self, layer: str, version: int) -> int:
        """The data version this layer's cached tiles are known to match (`version` at most)."""
        return min(version, self._covered.get(layer, version))

    def sync(
        self, versions: dict[str, int], tilesets_of: Callable[[str], list[str]], stamps: dict[str, str] | None = None
    ) -> None:
        """Catch up with other processes' invalidations, then with writes nobody reported.
        `stamps`: each layer's last-write time at its current version (the store's own record)."""
        with self._lock:
            self._sync(versions, tilesets_of, stamps or {})

    def _sync(self, versions: dict[str, int], tilesets_of: Callable[[str], list[str]], stamps: dict[str, str]) -> None:
        if self.disk is not None:
            for seq, layer, version, minx, miny, maxx, maxy in self.disk.log_since(self._seq):
                tilesets = tilesets_of(layer)
                if minx is None:
                    self.generation += 1
                    self.memory.drop(lambda key: key[0] in tilesets)
                else:
                    self._drop_memory_ranges(touched_ranges(tilesets, (minx, miny, maxx, maxy), self._reach(layer)))
                self._covered[layer] = max(version, self._covered.get(layer, 0))
                self._seq = seq
            if not self._covered:  # first sync of this process: what was the disk rendered from?
                for layer, (version, stamp) in self.disk.rendered_versions().items():
                    if _other_store(versions.get(layer), stamps.get(layer), version, stamp):
                        self._start_over(layer, versions[layer], tilesets_of, stamps)
                    else:
                        self._covered[layer] = version
        now = time.monotonic()
        for layer, version in versions.items():
            known = self._covered.get(layer)
            if known is None and self.disk is None:
                self._covered[layer] = version  # memory only: nothing was cached before this process
            elif known is None or version < known:  # tiles of unknown origin; or versions went down: another store
                self._start_over(layer, version, tilesets_of, stamps)
            elif version > known:
                # unexplained so far: the writer may be about to invalidate its bbox; wait `grace`
                first = self._unexplained.setdefault((layer, version), now)
                if now - first >= self.grace:
                    self._start_over(layer, version, tilesets_of, stamps)
        self._unexplained = {
            (layer, v): t for (layer, v), t in self._unexplained.items() if v > self._covered.get(layer, 0)
        }

    def _start_over(
        self, layer: str, version: int, tilesets_of: Callable[[str], list[str]], stamps: dict[str, str]
    ) -> None:
        """Every tile of `layer` dropped; the cache matches `version` (and its stamp) from now on."""
        self.invalidate(layer, tilesets_of(layer), None, version, stamps.get(layer))
        self._covered[layer] = version


def _other_store(version: int | None, stamp: str | None, recorded: int, recorded_stamp: str | None) -> bool:
    """Whether the store's (version, last-write stamp) of a layer cannot have followed the one the
    cache file recorded: a lower version, or the same version written at another time."""
    if version is None:
        return False
    if version < recorded:
        return True
    return version == recorded and None not in (stamp, recorded_stamp) and stamp != recorded_stamp
