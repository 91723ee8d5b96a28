"""The security tables, in the city store beside the layers (both backends).

`onemap_api_keys` keeps API keys as SHA-256 digests (keys are 32 random bytes: a slow hash adds
nothing against guessing, and lookups stay cheap). `onemap_audit` is the append-only audit log:
each entry's `hash` covers its content and the previous entry's hash (gis.security.audit).
Triggers refuse UPDATE and DELETE on the log, so changing it takes dropping them first — which
`onemap audit verify` then detects through the chain.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, inspect, text

from gis.storage.store import Store

KEYS = "onemap_api_keys"
AUDIT = "onemap_audit"


class SecurityTables:
    def __init__(self, store: Store):
        self.store = store
        metadata = MetaData(schema=store.schema)
        self.keys = Table(
            KEYS,
            metadata,
            Column("key_id", String(32), primary_key=True),
            Column("digest", String(64), nullable=False),
            Column("subject", Text, nullable=False),
            Column("role", String(63), nullable=False),
            Column("streets", Text),  # comma-separated codes; NULL: not limited
            Column("grids", Text),
            Column("departments", Text),  # comma-separated department codes (case handlers); migration 0006
            Column("created_at", Text, nullable=False),
            Column("expires_at", Text),
            Column("revoked_at", Text),
            Column("note", Text),
        )
        self.audit = Table(
            AUDIT,
            metadata,
            Column("seq", BigInteger if store.postgis else Integer, primary_key=True, autoincrement=False),
            Column("at", Text, nullable=False),
            Column("subject", Text, nullable=False),
            Column("role", String(63), nullable=False),
            Column("token_kind", String(16), nullable=False),
            Column("action", String(63), nullable=False),
            Column("target", Text),
            Column("bbox", Text),
            Column("filter", Text),
            Column("features", BigInteger),
            Column("detail", Text),
            Column("prev_hash", String(64), nullable=False),
            Column("hash", String(64), nullable=False),
        )

    def ensure(self) -> None:
        """Create the tables and the log's append-only triggers when missing (idempotent)."""
        store = self.store
        with store.engine.begin() as conn:
            if store.postgis:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
            existing = set(inspect(conn).get_table_names(schema=store.schema))
            if KEYS not in existing:
                self.keys.create(conn)
            if AUDIT not in existing:
                self.audit.create(conn)
                for statement in self._append_only_sql():
                    conn.execute(text(statement))

    def _append_only_sql(self) -> list[str]:
        if self.store.postgis:
            qualified = f'"{self.store.schema}"."{AUDIT}"'
            function = f'"{self.store.schema}".onemap_audit_append_only'
            return [
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
                f"CREATE TRIGGER onemap_audit_no_update BEFORE UPDATE OR DELETE ON {qualified} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()",
                f"CREATE TRIGGER onemap_audit_no_truncate BEFORE TRUNCATE ON {qualified} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            ]
        return [
            f'CREATE TRIGGER onemap_audit_no_update BEFORE UPDATE ON "{AUDIT}" '
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
            f'CREATE TRIGGER onemap_audit_no_delete BEFORE DELETE ON "{AUDIT}" '
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        ]


_cache: dict[int, SecurityTables] = {}


def tables_for(store: Store) -> SecurityTables:
    """The store's security tables, created on first use."""
    tables = _cache.get(id(store))
    if tables is None or tables.store is not store:
        tables = SecurityTables(store)
        tables.ensure()
        _cache[id(store)] = tables
    return tables
