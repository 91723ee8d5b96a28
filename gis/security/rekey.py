"""Key rotation: every sealed value of the store opened with its key and sealed with a new one,
in one transaction, and the new key's fingerprint recorded (docs/security.md, "Encryption at rest").

The values are resealed in Python (the same `DataKey` code that seals every write), staged in a
temporary table, and written back with one UPDATE per layer, so the layer's triggers run once per
layer rather than once per row. A failure or a killed process leaves the store on the old key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import inspect, or_, select, text

from gis.security.encryption import KEY_TABLE, DataKey, DataKeyError, encrypted_names
from gis.storage.engine import unbounded
from gis.storage.store import Store

STAGE = "onemap_rekey_stage"
BATCH = 20_000


def rekey(store: Store, new: DataKey, progress: Callable[[str, int], None] | None = None) -> int:
    """Reseal the store with `new`; returns how many values were resealed."""
    if new.key_id == store.key.key_id:
        raise DataKeyError(f"{new.source} holds the key the store is sealed with already ({new.key_id})")
    resealed = 0
    with store.engine.connect().execution_options(onemap_write=True) as conn, conn.begin():
        store.key.verify(conn, store.schema)  # the old key must open what is there
        existing = set(inspect(conn).get_table_names(schema=store.schema))
        with unbounded(conn, store.postgis, store.settings.database.statement_timeout_ms):
            for layer in store.catalog:
                names = sorted(encrypted_names(layer))
                if layer.id in existing and names:
                    resealed += _reseal(store, conn, layer.id, names, new)
                    if progress:
                        progress(layer.id, resealed)
            keys = f'"{store.schema}".{KEY_TABLE}' if store.postgis else KEY_TABLE
            conn.execute(text(f"UPDATE {keys} SET key_id = :k, sealed_at = :t"),
                         {"k": new.key_id, "t": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return resealed


def _reseal(store: Store, conn, layer_id: str, names: list[str], new: DataKey) -> int:
    table = store.tables[layer_id]
    present = or_(*(table.c[n].is_not(None) for n in names))
    rows = conn.execute(select(table.c.id, *(table.c[n] for n in names)).where(present)).all()
    if not rows:
        return 0
    stage = f'"{STAGE}"' if store.postgis else f'temp."{STAGE}"'
    columns = ", ".join(f'"{n}" TEXT' for n in names)
    conn.execute(text(f'DROP TABLE IF EXISTS {stage}'))
    conn.execute(text(f'CREATE TEMP TABLE "{STAGE}" (id BIGINT PRIMARY KEY, {columns})'))
    marks = ", ".join(f":c{i}" for i in range(len(names)))
    insert = text(f"INSERT INTO {stage} VALUES (:id, {marks})")
    count = 0
    for start in range(0, len(rows), BATCH):
        part = rows[start:start + BATCH]
        sealed = [new.seal_all([store.key.open(r[i + 1]) for r in part]) for i in range(len(names))]
        count += sum(v is not None for column in sealed for v in column)
        conn.execute(insert, [{"id": r[0], **{f"c{i}": sealed[i][k] for i in range(len(names))}}
                              for k, r in enumerate(part)])
    target = f'"{store.schema}"."{layer_id}"' if store.postgis else f'"{layer_id}"'
    sets = ", ".join(f'"{n}" = s."{n}"' for n in names)
    conn.execute(text(f"UPDATE {target} SET {sets} FROM {stage} s WHERE {target}.id = s.id"))
    conn.execute(text(f"DROP TABLE {stage}"))
    return count
