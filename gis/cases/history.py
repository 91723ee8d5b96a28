"""Each case's history: one row per transition, written in the transition's own transaction.

`onemap_case_history` sits beside the layers in the city store (both backends), created on first
use like the security tables. Rows are only ever appended: the history is what the numbers of the
loop (time to close, on-time rate, reopened cases) are computed from, so it must say what happened.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, String, Table, Text, func, inspect, select

from gis.storage.store import Store

HISTORY = "onemap_case_history"


class CaseHistory:
    def __init__(self, store: Store):
        self.store = store
        self.table = Table(
            HISTORY,
            MetaData(schema=store.schema),
            Column("case_id", BigInteger if store.postgis else Integer, primary_key=True, autoincrement=False),
            Column("step", Integer, primary_key=True, autoincrement=False),
            Column("action", String(63), nullable=False),
            Column("from_status", String(63)),
            Column("to_status", String(63), nullable=False),
            Column("at", Text, nullable=False),
            Column("subject", Text, nullable=False),
            Column("role", String(63), nullable=False),
            Column("department", Text),
            Column("note", Text),
            Column("reason", Text),
            Index(f"{HISTORY}_at", "at"),
        )

    def ensure(self) -> "CaseHistory":
        with self.store.engine.begin() as conn:
            if not inspect(conn).has_table(HISTORY, schema=self.store.schema):
                self.table.create(conn)
        return self

    def append(self, conn: Connection, case_id: int, action: str, from_status: str | None, to_status: str,
               at: dt.datetime, who, department: str | None = None, note: str | None = None,
               reason: str | None = None) -> int:
        """Add the next step of a case inside `conn`'s transaction (the case's row is locked)."""
        t = self.table
        step = int(conn.execute(select(func.coalesce(func.max(t.c.step), 0)).where(t.c.case_id == case_id)).scalar_one()) + 1
        conn.execute(t.insert().values(
            case_id=case_id, step=step, action=action, from_status=from_status, to_status=to_status,
            at=iso(at), subject=who.subject, role=who.role, department=department, note=note, reason=reason,
        ))
        return step

    def read(self, case_id: int) -> list[dict]:
        t = self.table
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.case_id == case_id).order_by(t.c.step)).mappings().all()
        return [{k: v for k, v in row.items() if k != "case_id"} for row in rows]


def iso(moment: dt.datetime) -> str:
    """UTC, to the second, as every time of the loop is written (and compared as text)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
