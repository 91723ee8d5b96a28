"""The audit log: append-only, each entry chained to the one before by SHA-256.

Who (subject, role, how authenticated), when, what (action, target layer or path), where
(bbox), which filter, and how many features. Entry n's hash covers its own fields and entry
n-1's hash, so changing or deleting any entry breaks every hash after it: `verify` recomputes
the chain and names the first entry that does not fit. The tables refuse UPDATE and DELETE
(gis.security.tables), so tampering takes dropping those triggers first.

Reads are recorded off the request path: `record()` queues the entry and one writer thread per
store appends it (`flush()` waits for the queue to drain). Edits pass their own connection
(`conn=`): the entry is then written in the edit's transaction, so it lands exactly when the
edit does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import OperationalError

from gis.batches import take_batch
from gis.security.principal import Principal, current
from gis.security.tables import AUDIT, tables_for
from gis.storage.store import Store

LOG = logging.getLogger("onemap.audit")
GENESIS = "0" * 64
FIELDS = ("seq", "at", "subject", "role", "token_kind", "action", "target", "bbox", "filter", "features", "detail")


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    subject: str
    role: str
    token_kind: str
    action: str
    target: str | None
    bbox: str | None
    filter: str | None
    features: int | None
    detail: str | None
    prev_hash: str
    hash: str

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in (*FIELDS, "prev_hash", "hash")}


def entry_hash(prev_hash: str, fields: dict) -> str:
    canonical = json.dumps([fields[name] for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "\n" + canonical).encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:4000]
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)[:4000]


def record(
    store: Store,
    action: str,
    target: str | None = None,
    *,
    bbox=None,
    filter=None,
    features: int | None = None,
    detail=None,
    principal: Principal | None = None,
    conn: Connection | None = None,
) -> None:
    """Record one event. With `conn` (an edit's open transaction) it is written there and then;
    otherwise it is queued for the store's writer thread (reads: never block a request)."""
    who = principal or current()
    fields = {
        "at": _now(),
        "subject": who.subject,
        "role": who.role,
        "token_kind": who.token_kind,
        "action": action,
        "target": target,
        "bbox": _text(list(bbox) if isinstance(bbox, tuple) else bbox),
        "filter": _text(filter),
        "features": None if features is None else int(features),
        "detail": _text(detail),
    }
    if conn is not None:
        _append(store, conn, fields)
        return
    _writer(store).put(fields)


def flush(store: Store, timeout: float = 10.0) -> None:
    """Wait until every queued entry of this store is written."""
    writer = _writers.get(id(store))
    if writer is not None:
        writer.drain(timeout)


def _append(store: Store, conn: Connection, fields: dict | list[dict]) -> None:
    """Chain and insert entries after the current tip, holding the log's write lock."""
    batch = fields if isinstance(fields, list) else [fields]
    table = tables_for(store).audit
    if store.postgis:
        # one appender at a time across processes: the chain has exactly one tip
        conn.execute(text(f'LOCK TABLE "{store.schema}"."{AUDIT}" IN EXCLUSIVE MODE'))
    else:
        # take SQLite's write lock before reading the tip (a no-op write), so no other writer slips in
        conn.execute(text(f'DELETE FROM "{AUDIT}" WHERE 0'))
    tip = conn.execute(select(table.c.seq, table.c.hash).order_by(table.c.seq.desc()).limit(1)).one_or_none()
    seq, prev = (tip[0] + 1, tip[1]) if tip is not None else (1, GENESIS)
    rows = []
    for entry in batch:
        row = {**entry, "seq": seq}
        row["prev_hash"], row["hash"] = prev, entry_hash(prev, row)
        rows.append(row)
        seq, prev = seq + 1, row["hash"]
    conn.execute(table.insert(), rows)


class _Writer:
    def __init__(self, store: Store):
        self.store = store
        self.queue: queue.Queue[dict] = queue.Queue()
        self.pending = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="onemap-audit", daemon=True)
        self.thread.start()

    def put(self, fields: dict) -> None:
        with self.cond:
            self.pending += 1
        self.queue.put(fields)

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.pending and time.monotonic() < deadline:
                self.cond.wait(0.05)

    def _run(self) -> None:
        while True:
            batch = take_batch(self.queue, 500)
            self._write(batch)
            with self.cond:
                self.pending -= len(batch)
                self.cond.notify_all()

    def _write(self, batch: list[dict]) -> None:
        for attempt in range(20):
            try:
                with self.store.engine.begin() as conn:
                    _append(self.store, conn, batch)  # one lock, one tip read, one insert per batch
                return
            except OperationalError as err:  # SQLite busy: another writer held the lock
                LOG.info("audit append retry %d: %s", attempt, str(err).splitlines()[0])
                time.sleep(0.05 * (attempt + 1))
            except Exception:
                LOG.exception("audit entries could not be written; %d lost", len(batch))
                return
        LOG.error("audit entries could not be written after retries; %d lost", len(batch))


_writers: dict[int, _Writer] = {}
_writers_lock = threading.Lock()


def _writer(store: Store) -> _Writer:
    writer = _writers.get(id(store))
    if writer is None or writer.store is not store:
        with _writers_lock:
            writer = _writers.get(id(store))
            if writer is None or writer.store is not store:
                tables_for(store)
                writer = _writers[id(store)] = _Writer(store)
    return writer


# -- reading --------------------------------------------------------------------------------------


def entries(
    store: Store,
    subject: str | None = None,
    role: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> list[Entry]:
    table = tables_for(store).audit
    statement = select(table).order_by(table.c.seq)
    for column, value in (("subject", subject), ("role", role), ("target", target)):
        if value is not None:
            statement = statement.where(table.c[column] == value)
    if action is not None:
        statement = statement.where(table.c.action.like(action.replace("*", "%")))
    if since is not None:
        statement = statement.where(table.c.at >= since)
    if until is not None:
        statement = statement.where(table.c.at <= until)
    if limit is not None:
        statement = statement.limit(limit)
    with store.engine.connect() as conn:
        return [Entry(**row) for row in conn.execute(statement).mappings()]


@dataclass
class Verdict:
    ok: bool
    checked: int
    problems: list[str]


def tip(store: Store) -> str:
    """`seq:hash` of the newest entry: an anchor to keep outside the database."""
    table = tables_for(store).audit
    with store.engine.connect() as conn:
        row = conn.execute(select(table.c.seq, table.c.hash).order_by(table.c.seq.desc()).limit(1)).one_or_none()
    return f"0:{GENESIS}" if row is None else f"{row[0]}:{row[1]}"


def verify(store: Store, anchor: str | None = None) -> Verdict:
    """Recompute the chain; every break is named (a changed entry, a gap, a reordering). With an
    `anchor` (`seq:hash` from `tip()`, kept elsewhere) also that entry must still be there, as it
    was: removing the newest entries leaves a valid but shorter chain, which only an anchor shows."""
    problems: list[str] = []
    anchor_seq, anchor_hash = _anchor(anchor) if anchor else (None, None)
    anchor_found = anchor_seq == 0
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for entry in _all(store):
        checked += 1
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
        if entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq}: does not follow the entry before it (an entry was deleted or replaced)")
        fields = {name: getattr(entry, name) for name in FIELDS}
        if entry_hash(entry.prev_hash, fields) != entry.hash:
            problems.append(f"entry {entry.seq}: its content does not match its hash (it was changed)")
        if entry.seq == anchor_seq:
            anchor_found = True
            if entry.hash != anchor_hash:
                problems.append(f"entry {entry.seq}: differs from the anchor kept for it (the log was rewritten up to it)")
        prev_hash, expected_seq = entry.hash, entry.seq + 1
    if anchor_seq is not None and not anchor_found:
        problems.append(f"entry {anchor_seq} of the anchor is gone: the newest entries were deleted")
    return Verdict(not problems, checked, problems)


def _anchor(text_: str) -> tuple[int, str]:
    seq, _, digest = text_.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ValueError(f"an anchor is SEQ:HASH as `onemap audit tip` prints it, not {text_[:80]!r}")
    return int(seq), digest


def _all(store: Store) -> Iterator[Entry]:
    table = tables_for(store).audit
    with store.engine.connect() as conn:
        for row in conn.execute(select(table).order_by(table.c.seq)).mappings():
            yield Entry(**row)
