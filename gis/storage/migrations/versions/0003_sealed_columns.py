"""Sensitive columns sealed at rest (gis.security.encryption): the SQL functions both backends
read them with, the table recording which key seals the store, and the plaintext already there
sealed in place — in the initialisation's one transaction, so a store is converted whole or not
at all.

On PostGIS the functions run pgcrypto in SQL and read the key from the session setting
`onemap.data_key` (set on connect by the store's engines); on the GeoPackage the same names are
Python functions registered on each connection, so only the key table is created here.

Idempotent: values are sealed only when the store records no key yet, i.e. never twice.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from sqlalchemy import inspect, text

from gis.security.encryption import ALGORITHM, KEY_TABLE, SETTING, encrypted_names

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# inlinable (one expression, no FROM): PostgreSQL folds it into the caller's query
_DECRYPT = """
CREATE OR REPLACE FUNCTION "{schema}".onemap_decrypt(sealed text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
  SELECT convert_from(decrypt_iv(substring(decode(sealed, 'base64') FROM 17),
                                 decode(current_setting('{setting}'), 'hex'),
                                 substring(decode(sealed, 'base64') FROM 1 FOR 16), 'aes-cbc/pad:pkcs'), 'UTF8')
$fn$
"""
_ENCRYPT = """
CREATE OR REPLACE FUNCTION "{schema}".onemap_encrypt(plain text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE iv bytea := gen_random_bytes(16);
BEGIN
  IF plain IS NULL THEN RETURN NULL; END IF;
  RETURN translate(encode(iv || encrypt_iv(convert_to(plain, 'UTF8'), decode(current_setting('{setting}'), 'hex'),
                                         iv, 'aes-cbc/pad:pkcs'), 'base64'), E'\\n', '');
END
$fn$
"""


def upgrade(store) -> None:
    conn = op.get_bind()
    schema = store.schema
    if store.postgis:
        # in public, not the store's schema: dropping one store's schema must not drop it for others
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public"))
        conn.execute(text(_DECRYPT.format(schema=schema, setting=SETTING)))
        conn.execute(text(_ENCRYPT.format(schema=schema, setting=SETTING)))
    table = f'"{schema}".{KEY_TABLE}' if store.postgis else KEY_TABLE
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (key_id TEXT NOT NULL, algorithm TEXT NOT NULL, sealed_at TEXT NOT NULL)"))
    if conn.execute(text(f"SELECT key_id FROM {table}")).first() is not None:
        return  # sealed already (a store created at head, or this revision re-run)
    _seal_existing(conn, store)
    conn.execute(
        text(f"INSERT INTO {table} (key_id, algorithm, sealed_at) VALUES (:k, :a, :t)"),
        {"k": store.key.key_id, "a": ALGORITHM, "t": _now()},
    )


def _seal_existing(conn, store) -> None:
    from gis.storage.engine import unbounded

    existing = set(inspect(conn).get_table_names(schema=store.schema))
    with unbounded(conn, store.postgis, store.settings.database.statement_timeout_ms):
        for layer in store.catalog:
            names = sorted(encrypted_names(layer))
            if layer.id not in existing or not names:
                continue
            qualified = f'"{store.schema}"."{layer.id}"' if store.postgis else f'"{layer.id}"'
            sets = ", ".join(f'"{n}" = onemap_encrypt("{n}")' for n in names)
            present = " OR ".join(f'"{n}" IS NOT NULL' for n in names)
            conn.execute(text(f"UPDATE {qualified} SET {sets} WHERE {present}"))


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
