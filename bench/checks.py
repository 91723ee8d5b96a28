"""Behaviour checks on a live OneMap: single-flight of concurrent misses, cancellation on disconnect.

Both watch PostgreSQL itself (pg_stat_activity, polled from a separate connection), not OneMap's
own account of what it did.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import psycopg

from rawdb import conninfo

_ACTIVE = """
SELECT pid, query_start, state, wait_event_type FROM pg_stat_activity
WHERE application_name = 'onemap' AND state = 'active' AND query LIKE '%%ST_AsMVT%%'
"""


class _Watcher(threading.Thread):
    """Collects every distinct tile statement execution (backend pid, statement start) it sees."""

    def __init__(self, database_url: str):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(conninfo(database_url), autocommit=True, application_name="onemap-bench-watch")
        self.seen: set[tuple[int, object]] = set()
        self.polls = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for pid, start, _state, _wait in self.conn.execute(_ACTIVE).fetchall():
                self.seen.add((pid, start))
            self.polls += 1

    def finish(self) -> set:
        self._halt.set()
        self.join(5)
        self.conn.close()
        return self.seen


_SCANS = "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = %s::regclass"


def _scans(conn, table: str) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(_SCANS, (table,)).fetchone()[0]


def single_flight(base: str, path: str, database_url: str, table: str, clients: int = 16) -> dict:
    """`clients` simultaneous requests for one uncached tile: how many tile statements ran?

    Counted twice over: scans of the layer's table in PostgreSQL's statistics (one per statement;
    nothing else reads that table meanwhile; backends flush their counts within ~10 s of going idle,
    hence the wait), and distinct backends seen running the tile statement in pg_stat_activity (a
    lower bound on separate renders). Pick a tile within the size budget, so one render = one statement.
    """
    stats = psycopg.connect(conninfo(database_url), autocommit=True, application_name="onemap-bench-watch")
    time.sleep(11)  # whatever OneMap's start-up read is flushed
    before = _scans(stats, table)
    watcher = _Watcher(database_url)
    watcher.start()
    time.sleep(0.2)
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    lengths: list[int] = []

    def client():
        barrier.wait()
        with urllib.request.urlopen(base + path, timeout=60) as r:
            body = r.read()
            statuses.append(r.status)
            lengths.append(len(body))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    seen = watcher.finish()
    time.sleep(11)
    after = _scans(stats, table)
    stats.close()
    return {
        "path": path,
        "clients": clients,
        "statuses": sorted(set(statuses)),
        "same_body": len(set(lengths)) == 1,
        "queries": after - before,
        "backends": len({pid for pid, _ in seen}),
        "polls": watcher.polls,
        "seconds": round(elapsed, 3),
    }


def cancellation(base: str, path: str, database_url: str, table: str, wait_s: float = 3.0) -> dict:
    """Hold the layer's table locked so the tile statement waits; drop the client; does the wait end?"""
    locker = psycopg.connect(conninfo(database_url), application_name="onemap-bench-lock")
    watch = psycopg.connect(conninfo(database_url), autocommit=True, application_name="onemap-bench-watch")
    result: dict = {"path": path, "table": table}
    try:
        locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        parts = urlsplit(base)
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        pid = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid is None:
            rows = watch.execute(_ACTIVE).fetchall()
            waiting = [r for r in rows if r[3] == "Lock"]
            if waiting:
                pid = waiting[0][0]
            else:
                time.sleep(0.01)
        result["query_seen_waiting"] = pid is not None
        if pid is None:
            sock.close()
            return result
        time.sleep(0.5)  # the statement is well under way (waiting on the lock) when the client leaves
        t0 = time.monotonic()
        sock.close()
        ended = None
        while time.monotonic() - t0 < wait_s:
            row = watch.execute("SELECT state, query LIKE '%%ST_AsMVT%%' FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone()
            if row is None or row[0] != "active" or not row[1]:
                ended = time.monotonic() - t0
                break
            time.sleep(0.005)
        result["cancelled"] = ended is not None
        result["cancel_ms"] = None if ended is None else round(ended * 1000, 1)
        return result
    finally:
        locker.rollback()
        locker.close()
        watch.close()


def warm_request(base: str, path: str) -> int:
    with urllib.request.urlopen(base + path, timeout=60) as r:
        r.read()
        return r.status
