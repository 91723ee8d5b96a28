"""Encryption at rest of the sensitive columns (docs/security.md, "Encryption at rest").

Values of the classes in ENCRYPTED_CLASSES are stored as base64(IV ‖ AES-256-CBC(PKCS#7)) in
their text column, a random IV per value, so equal values look different and pgcrypto's
`decrypt_iv` and Python's `cryptography` read the same bytes. NULL stays NULL.

Reads decrypt in SQL with one function of the same name on both backends, `onemap_decrypt(col)`:
on PostGIS a SQL function over pgcrypto (migration 0003) reading the key from the session setting
`onemap.data_key`, set on every new connection and never stored; on the GeoPackage a Python
function registered on every connection. `readable()` wraps a column in it, so the masking rules,
filters, sort keys and renderers that already went through one column accessor see plaintext.
Writes encrypt in Python (`DataKey.seal_all`) before the rows leave the process, so COPY, WAL
and the .gpkg file only ever hold ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import ColumnElement, Engine, String, Table, event, func, text

from gis.catalog import Attribute, Layer, Sensitivity

LOG = logging.getLogger("onemap.encryption")
ENCRYPTED_CLASSES = frozenset(
    {Sensitivity.person_name, Sensitivity.national_id, Sensitivity.phone, Sensitivity.address, Sensitivity.secret}
)
ALGORITHM = "aes-256-cbc-pkcs7/iv-prefixed/base64"
SETTING = "onemap.data_key"  # the PostgreSQL session setting the SQL functions read
KEY_TABLE = "onemap_data_key"  # one row: which key (its fingerprint) the store's values are sealed with
_BLOCK = 16


class DataKeyError(RuntimeError):
    """The data key is missing, malformed or not the store's; the message says what to do."""


class DataKey:
    """The 256-bit key of the sensitive columns, held in the server's memory only."""

    def __init__(self, key: bytes, source: str):
        if len(key) != 32:
            raise DataKeyError(f"{source}: a data key is 32 bytes (64 hex digits), not {len(key)} bytes")
        self._aes = algorithms.AES(key)
        self._local = threading.local()  # cipher contexts are not thread-safe: one per thread
        self._hex = key.hex()
        self.source = source
        # identifies the key without revealing it: what the store records and start-up compares
        self.key_id = hmac.new(key, b"onemap data key", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def load(cls, database) -> "DataKey":
        """From ONEMAP_DATA_KEY, else ONEMAP_DATA_KEY_FILE, else the default file; a missing file is
        generated (mode 0600) and its path logged."""
        if database.data_key is not None:
            return cls(_parse(database.data_key.get_secret_value(), "ONEMAP_DATA_KEY"), "ONEMAP_DATA_KEY")
        path = database.data_key_path
        if not path.exists():
            # a new deployment; a store sealed with another key is refused by `verify`, naming both
            try:
                _generate(path)
            except OSError as err:
                raise DataKeyError(
                    f"cannot create the data key file {path} ({err.strerror}): set ONEMAP_DATA_KEY_FILE to a "
                    "writable path, or to the key file the store was sealed with"
                ) from None
        try:
            raw = path.read_text().strip()
        except OSError as err:
            raise DataKeyError(f"cannot read the data key file {path}: {err.strerror}") from None
        return cls(_parse(raw, str(path)), str(path))

    # -- values --------------------------------------------------------------------------------
    # CBC built on one reusable AES-ECB context per thread (C_i = E(P_i xor C_i-1)): a new CBC
    # cipher object per value cost ~30 µs, several times the AES work, in a city-sized load.

    def _ecb(self):
        contexts = getattr(self._local, "ecb", None)
        if contexts is None:
            ecb = Cipher(self._aes, modes.ECB())
            contexts = self._local.ecb = (ecb.encryptor(), ecb.decryptor())
        return contexts

    def seal(self, value: str | None) -> str | None:
        if value is None:
            return None
        data = str(value).encode()
        pad = _BLOCK - len(data) % _BLOCK
        data += bytes([pad]) * pad
        iv = os.urandom(_BLOCK)
        encrypt = self._ecb()[0].update
        out = [iv]
        previous = int.from_bytes(iv)
        for start in range(0, len(data), _BLOCK):
            block = encrypt((int.from_bytes(data[start:start + _BLOCK]) ^ previous).to_bytes(_BLOCK))
            out.append(block)
            previous = int.from_bytes(block)
        return base64.b64encode(b"".join(out)).decode()

    def seal_all(self, values: Sequence) -> list:
        """`seal` over a column, chained block by block across all values of one length at once:
        one AES call per block position instead of one per block (bulk loads seal millions)."""
        out: list = [None] * len(values)
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for i, value in enumerate(values):
            if value is not None:
                data = str(value).encode()
                pad = _BLOCK - len(data) % _BLOCK
                groups.setdefault(len(data) + pad, []).append((i, data + bytes([pad]) * pad))
        encrypt = self._ecb()[0].update
        for size, members in groups.items():
            k, blocks = len(members), size // _BLOCK
            plain = np.frombuffer(b"".join(d for _, d in members), np.uint8).reshape(k, blocks, _BLOCK)
            sealed = np.empty((k, blocks + 1, _BLOCK), np.uint8)
            sealed[:, 0] = np.frombuffer(os.urandom(k * _BLOCK), np.uint8).reshape(k, _BLOCK)  # the IVs
            for j in range(blocks):
                chained = np.bitwise_xor(plain[:, j], sealed[:, j])
                sealed[:, j + 1] = np.frombuffer(encrypt(chained.tobytes()), np.uint8).reshape(k, _BLOCK)
            rows = sealed.reshape(k, -1)
            for (i, _), row in zip(members, rows):
                out[i] = base64.b64encode(row.tobytes()).decode()
        return out

    def open(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            raw = base64.b64decode(sealed)
            if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
                raise ValueError
            body = raw[_BLOCK:]
            # P_i = D(C_i) xor C_i-1, all blocks at once: raw[:-16] is IV ‖ C_0 … C_n-2
            padded = (int.from_bytes(self._ecb()[1].update(body)) ^ int.from_bytes(raw[:-_BLOCK])).to_bytes(len(body))
            pad = padded[-1]
            if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
                raise ValueError
            return padded[:-pad].decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise DataKeyError(
                f"a sealed value does not open with the data key from {self.source} (key {self.key_id}): "
                "the store was written with another key, or the value is not ciphertext"
            ) from None

    def seal_row(self, layer: Layer, values: dict) -> dict:
        """A row about to be written (name -> value) with its sensitive values sealed."""
        names = encrypted_names(layer)
        return {k: self.seal(v) if k in names else v for k, v in values.items()}

    # -- connections -----------------------------------------------------------------------------

    @property
    def postgres_session(self) -> tuple[str, str]:
        """The session setting (name, value) that lets a PostgreSQL connection's SQL functions open values."""
        return SETTING, self._hex

    def attach(self, engine: Engine, postgis: bool) -> None:
        """Every new connection of `engine` can run onemap_decrypt/onemap_encrypt with this key."""

        @event.listens_for(engine, "connect")
        def _install(dbapi_conn, _record):
            if postgis:
                # a bound parameter: the key is not in the statement text (pg_stat_activity, logs)
                with dbapi_conn.cursor() as cur:
                    cur.execute("SELECT set_config(%s, %s, false)", self.postgres_session)
                if not dbapi_conn.autocommit:
                    dbapi_conn.commit()  # a session setting made in a rolled-back transaction is undone
            else:
                dbapi_conn.create_function("onemap_decrypt", 1, self.open, deterministic=True)
                dbapi_conn.create_function("onemap_encrypt", 1, self.seal)

    def verify(self, conn, schema: str | None) -> None:
        """Refuse a store sealed with another key before anything is read from it."""
        table = f'"{schema}".{KEY_TABLE}' if schema else KEY_TABLE
        try:
            stored = conn.execute(text(f"SELECT key_id FROM {table}")).scalar()
        except Exception:
            return  # not migrated yet: migration 0003 records the key it seals with
        if stored is not None and stored != self.key_id:
            raise DataKeyError(
                f"this store's sensitive columns are sealed with data key {stored}, but {self.source} "
                f"holds key {self.key_id}: set ONEMAP_DATA_KEY_FILE (or ONEMAP_DATA_KEY) to the key the "
                "store was written with; a demo store can instead be deleted (the .gpkg file, or the "
                "PostGIS schema) and rebuilt with `onemap demo`"
            )


def encrypted(attribute: Attribute) -> bool:
    return attribute.sensitivity in ENCRYPTED_CLASSES


def encrypted_names(layer: Layer) -> frozenset[str]:
    return frozenset(a.name for a in layer.attributes if encrypted(a))


def readable(table: Table, attribute: Attribute) -> ColumnElement:
    """The column as plaintext: decrypted in SQL when its class is stored sealed."""
    column = table.c[attribute.name]
    return func.onemap_decrypt(column, type_=String()) if encrypted(attribute) else column


def _parse(raw: str, source: str) -> bytes:
    try:
        return bytes.fromhex(raw.strip())
    except ValueError:
        raise DataKeyError(f"{source}: a data key is 64 hex digits (make one with `openssl rand -hex 32`)") from None


def _generate(path: Path) -> None:
    """A new random key in `path`, mode 0600, unless another process wrote one first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(os.urandom(32).hex() + "\n")
        os.link(tmp, path)  # atomic, and fails if a concurrent start made one already
        LOG.warning(
            "generated a new data key into %s (mode 0600). Back it up with the store: without it the "
            "sensitive columns cannot be read. ONEMAP_DATA_KEY_FILE names the key file to use.",
            path,
        )
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
