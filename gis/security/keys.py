"""API keys: `om_<key id>_<secret>`, shown once at creation, stored only as a SHA-256 digest.

A key names its subject, role, and optionally the streets or grids its holder is limited to.
Revoked or expired keys authenticate nobody (a 401, not the public role).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from gis.security.tables import tables_for
from gis.storage.store import Store

PREFIX = "om_"


class KeyError_(ValueError):
    """The key is unknown, malformed, revoked or expired; the message says which."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    subject: str
    role: str
    streets: frozenset[str] | None
    grids: frozenset[str] | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    note: str | None
    departments: frozenset[str] | None = None  # the departments whose cases the holder handles

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not _expired(self.expires_at)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expired(expires_at: str | None) -> bool:
    if not expires_at:
        return False
    return dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _codes(value: str | None) -> frozenset[str] | None:
    return None if value is None else frozenset(c for c in value.split(",") if c)


def _record(row) -> KeyRecord:
    return KeyRecord(
        row["key_id"], row["subject"], row["role"], _codes(row["streets"]), _codes(row["grids"]),
        row["created_at"], row["expires_at"], row["revoked_at"], row["note"], _codes(row.get("departments")),
    )


def create(
    store: Store,
    subject: str,
    role: str,
    streets: list[str] | None = None,
    grids: list[str] | None = None,
    expires_at: dt.datetime | None = None,
    note: str | None = None,
    departments: list[str] | None = None,
) -> tuple[str, KeyRecord]:
    """A new key: returns the token (the only time it exists in clear) and its record."""
    table = tables_for(store).keys
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = f"{PREFIX}{key_id}_{secret}"
    row = {
        "key_id": key_id,
        "digest": _digest(token),
        "subject": subject,
        "role": role,
        "streets": None if streets is None else ",".join(sorted(set(streets))),
        "grids": None if grids is None else ",".join(sorted(set(grids))),
        "created_at": _now(),
        "expires_at": None if expires_at is None else expires_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revoked_at": None,
        "note": note,
        "departments": None if departments is None else ",".join(sorted(set(departments))),
    }
    with store.engine.begin() as conn:
        conn.execute(table.insert().values(**row))
    return token, _record(row)


def revoke(store: Store, key_id: str) -> KeyRecord:
    table = tables_for(store).keys
    with store.engine.begin() as conn:
        row = conn.execute(select(table).where(table.c.key_id == key_id)).mappings().one_or_none()
        if row is None:
            raise KeyError_(f"no API key {key_id!r}; `onemap keys list` shows them")
        if row["revoked_at"] is None:
            conn.execute(table.update().where(table.c.key_id == key_id).values(revoked_at=_now()))
        row = conn.execute(select(table).where(table.c.key_id == key_id)).mappings().one()
    return _record(row)


def list_keys(store: Store) -> list[KeyRecord]:
    table = tables_for(store).keys
    with store.engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.created_at, table.c.key_id)).mappings().all()
    return [_record(r) for r in rows]


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def verify(store: Store, token: str) -> KeyRecord:
    """The active key a token is, or KeyError_ naming why not."""
    parts = token[len(PREFIX):].split("_", 1)
    if len(parts) != 2 or not parts[0] or len(parts[0]) > 32:
        raise KeyError_("malformed API key")
    table = tables_for(store).keys
    with store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.key_id == parts[0])).mappings().one_or_none()
    # compare digests even for unknown ids, so timing does not tell which ids exist
    expected = row["digest"] if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(token)) or row is None:
        raise KeyError_("unknown API key")
    record = _record(row)
    if record.revoked_at is not None:
        raise KeyError_("this API key was revoked")
    if _expired(record.expires_at):
        raise KeyError_("this API key has expired")
    return record
