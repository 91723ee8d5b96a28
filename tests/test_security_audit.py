"""The audit log: what is recorded, that it is append-only, and that `onemap audit verify`
detects an entry changed, deleted or inserted by someone who went around the triggers.

Each test works on its own store copy of the log: tampering must not spoil the shared store.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gis.cli import main
from gis.security import audit
from gis.security.principal import Principal, for_role
from gis.security.roles import Policy
from gis.security.tables import AUDIT
from gis.settings import Settings
from gis.storage.store import Store
from tests.conftest import SCHEMA
from tests.security_support import SHIPPED_ROLES


@pytest.fixture()
def log_store(store, tmp_path):
    """A store of its own (another schema or file), so tampering leaves the shared log alone."""
    settings = Settings.from_env(
        database_url=store.settings.database.database_url if store.postgis else f"gpkg:///{tmp_path / 'audit.gpkg'}",
        schema_name=f"{SCHEMA}_audit_{tmp_path.name[-12:].replace('-', '_')}",
        roles_file=SHIPPED_ROLES,
    )
    own = Store.open(settings, store.catalog)
    yield own
    if own.postgis:
        with own.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{own.schema}" CASCADE'))
    own.close()


def table(store: Store) -> str:
    return f'"{store.schema}"."{AUDIT}"' if store.postgis else f'"{AUDIT}"'


def fill(store: Store, n: int = 12) -> None:
    policy = Policy.load(SHIPPED_ROLES, store.catalog)
    people = [for_role(policy, "admin", "ada"), for_role(policy, "staff", "li", streets=["370283001"])]
    for i in range(n):
        audit.record(store, "features.items", "population", bbox=(120.0, 36.0, 120.1, 36.1 + i / 100),
                     filter="age_band = '80+'", features=i, principal=people[i % 2])
    audit.flush(store)


def verify(store: Store):
    env = {"ONEMAP_DATABASE_URL": store.settings.database.database_url, "ONEMAP_SCHEMA_NAME": store.settings.database.schema_name}
    return CliRunner().invoke(main, ["audit", "verify"], env=env)


def without_triggers(store: Store, statement: str) -> None:
    """What an intruder with database access does: drop the guards, then write."""
    with store.engine.begin() as conn:
        if store.postgis:
            conn.execute(text(f"ALTER TABLE {table(store)} DISABLE TRIGGER USER"))
            conn.execute(text(statement))
            conn.execute(text(f"ALTER TABLE {table(store)} ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER onemap_audit_no_update"))
            conn.execute(text("DROP TRIGGER onemap_audit_no_delete"))
            conn.execute(text(statement))


def test_entries_say_who_when_what_where_and_how_many(log_store):
    fill(log_store, 4)
    entries = audit.entries(log_store)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    first = entries[0]
    assert (first.subject, first.role, first.action, first.target, first.features) == ("ada", "admin", "features.items", "population", 0)
    assert first.bbox.startswith("[120.0, 36.0") and first.filter == "age_band = '80+'" and first.at.endswith("Z")
    assert entries[1].prev_hash == first.hash and first.prev_hash == "0" * 64
    assert [e.subject for e in audit.entries(log_store, role="staff")] == ["li", "li"]


def test_the_log_refuses_update_and_delete(log_store):
    fill(log_store, 2)
    for statement in (f"UPDATE {table(log_store)} SET features = 99", f"DELETE FROM {table(log_store)}"):
        with pytest.raises(Exception, match="append-only"):
            with log_store.engine.begin() as conn:
                conn.execute(text(statement))
    assert len(audit.entries(log_store)) == 2


def test_an_intact_log_verifies(log_store):
    fill(log_store)
    result = verify(log_store)
    assert result.exit_code == 0, result.output
    assert "12 entries" in result.output


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        ("UPDATE {t} SET features = 0 WHERE seq = 5", ["entry 5", "changed"]),
        ("UPDATE {t} SET subject = 'someone else' WHERE seq = 1", ["entry 1", "changed"]),
        ("DELETE FROM {t} WHERE seq = 7", ["7", "missing"]),
        ("UPDATE {t} SET bbox = NULL, hash = 'f' || substr(hash, 2) WHERE seq = 3", ["entry 3"]),
    ],
    ids=["count", "who", "deleted", "rehashed"],
)
def test_a_tampered_log_is_detected_by_onemap_audit_verify(log_store, tamper, words):
    fill(log_store)
    without_triggers(log_store, tamper.format(t=table(log_store)))
    result = verify(log_store)
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output, result.output


def test_audit_exports_csv_with_filters(log_store):
    fill(log_store, 6)
    env = {"ONEMAP_DATABASE_URL": log_store.settings.database.database_url, "ONEMAP_SCHEMA_NAME": log_store.settings.database.schema_name}
    result = CliRunner().invoke(main, ["audit", "--subject", "li", "--csv"], env=env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["seq"]) for r in rows] == [2, 4, 6] and {r["role"] for r in rows} == {"staff"}
    assert all(len(r["hash"]) == 64 for r in rows)


def test_edits_write_their_entry_in_their_own_transaction(log_store):
    who = Principal("editor", "admin", token_kind="api_key", rights=Policy.load(SHIPPED_ROLES).role("admin"))
    with pytest.raises(RuntimeError):
        with log_store.engine.begin() as conn:
            audit.record(log_store, "edit.update", "urban_components/1", features=1, principal=who, conn=conn)
            raise RuntimeError("the edit failed")
    assert audit.entries(log_store) == []  # rolled back with the edit
    with log_store.engine.begin() as conn:
        audit.record(log_store, "edit.update", "urban_components/1", features=1, principal=who, conn=conn)
    assert [e.action for e in audit.entries(log_store)] == ["edit.update"]
    assert audit.verify(log_store).ok


def test_an_anchor_kept_elsewhere_reveals_deleted_newest_entries(log_store):
    fill(log_store, 6)
    env = {"ONEMAP_DATABASE_URL": log_store.settings.database.database_url, "ONEMAP_SCHEMA_NAME": log_store.settings.database.schema_name}
    anchor = CliRunner().invoke(main, ["audit", "tip"], env=env).output.strip()
    assert anchor.startswith("6:")
    fill(log_store, 2)
    assert CliRunner().invoke(main, ["audit", "verify", "--anchor", anchor], env=env).exit_code == 0
    without_triggers(log_store, f"DELETE FROM {table(log_store)} WHERE seq >= 5")
    assert verify(log_store).exit_code == 0  # a shorter chain is still a valid chain...
    result = CliRunner().invoke(main, ["audit", "verify", "--anchor", anchor], env=env)
    assert result.exit_code == 1 and "entry 6" in result.output and "deleted" in result.output  # ...but not the anchored one
