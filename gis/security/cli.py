"""`onemap keys …` (API keys), `onemap audit …` (read, export and verify the audit log) and
`onemap rekey` (a new data key for the sealed columns)."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import click

from gis.security import audit as audit_log
from gis.security import keys as api_keys
from gis.security.roles import Policy


def _store(database_url: str | None):
    from gis.settings import Settings
    from gis.storage.store import Store

    settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
    try:
        store = Store.open(settings)
    except Exception as err:
        raise click.ClickException(f"cannot open the store: {str(err).splitlines()[0]}") from None
    return settings, store


def _codes(value: str | None) -> list[str] | None:
    return None if value is None else [c.strip() for c in value.split(",") if c.strip()]


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (sent as `Authorization: Bearer <key>`)."""


@keys.command("create")
@click.option("--subject", required=True, help="who holds the key (a person or a system)")
@click.option("--role", required=True, help="a role of the roles file (e.g. staff, admin, wall)")
@click.option("--streets", default=None, help="comma-separated street codes the holder is limited to")
@click.option("--grids", default=None, help="comma-separated grid codes the holder is limited to")
@click.option("--departments", default=None, help="comma-separated department codes whose cases the holder handles")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="expire after this many days")
@click.option("--note", default=None)
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def create(subject, role, streets, grids, departments, days, note, database_url) -> None:
    """Create a key; the key itself is printed once and stored only as a hash."""
    settings, store = _store(database_url)
    try:
        policy = Policy.load(settings.server.roles_path, store.catalog)
        if role not in policy.roles:
            raise click.BadParameter(f"no role {role!r}; roles are {', '.join(policy.roles)}", param_hint="--role")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None
        token, record = api_keys.create(
            store, subject, role, _codes(streets), _codes(grids), expires, note, _codes(departments)
        )
    finally:
        store.close()
    click.echo(f"key {record.key_id} for {subject} ({role}); keep it secret, it is shown only now:", err=True)
    click.echo(token)


@keys.command("list")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def list_(database_url) -> None:
    """List keys (never their secrets)."""
    _, store = _store(database_url)
    try:
        records = api_keys.list_keys(store)
    finally:
        store.close()
    for r in records:
        limits = ";".join(x for x in (
            r.streets and "streets=" + ",".join(sorted(r.streets)), r.grids and "grids=" + ",".join(sorted(r.grids)),
            r.departments and "departments=" + ",".join(sorted(r.departments)),
        ) if x)
        state = "active" if r.active else ("revoked " + r.revoked_at if r.revoked_at else "expired")
        click.echo("\t".join([r.key_id, r.subject, r.role, limits or "-", r.created_at, r.expires_at or "-", state]))


@keys.command("revoke")
@click.argument("key_id")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def revoke(key_id, database_url) -> None:
    """Revoke a key by its id (the part after `om_`, as `keys list` shows it)."""
    _, store = _store(database_url)
    try:
        record = api_keys.revoke(store, key_id)
    except api_keys.KeyError_ as err:
        raise click.ClickException(str(err)) from None
    finally:
        store.close()
    click.echo(f"revoked {record.key_id} ({record.subject}, {record.role})")


@click.group(invoke_without_command=True)
@click.option("--subject", default=None)
@click.option("--role", default=None)
@click.option("--action", default=None, help="e.g. features.items, tiles, stats, request, edit.* (* is a wildcard)")
@click.option("--target", default=None, help="a layer id, or a path for `request` entries")
@click.option("--since", default=None, help="ISO 8601 time, UTC")
@click.option("--until", default=None, help="ISO 8601 time, UTC")
@click.option("--limit", type=click.IntRange(1), default=None)
@click.option("--csv", "as_csv", is_flag=True, help="write CSV (every field, hashes included) to stdout")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
@click.pass_context
def audit(ctx, subject, role, action, target, since, until, limit, as_csv, database_url) -> None:
    """Show the audit log (filters narrow it); `onemap audit verify` checks its hash chain."""
    if ctx.invoked_subcommand is not None:
        return
    _, store = _store(database_url)
    try:
        rows = audit_log.entries(store, subject, role, action, target, since, until, limit)
    finally:
        store.close()
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow([*audit_log.FIELDS, "prev_hash", "hash"])
        for entry in rows:
            writer.writerow([getattr(entry, name) for name in (*audit_log.FIELDS, "prev_hash", "hash")])
        return
    for e in rows:
        click.echo("\t".join(str(v) if v is not None else "-" for v in (
            e.seq, e.at, e.subject, e.role, e.token_kind, e.action, e.target, e.bbox, e.filter, e.features)))


@audit.command("tip")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def tip(database_url) -> None:
    """Print SEQ:HASH of the newest entry: keep it elsewhere, and pass it to `verify --anchor`."""
    _, store = _store(database_url)
    try:
        click.echo(audit_log.tip(store))
    finally:
        store.close()


@audit.command("verify")
@click.option("--anchor", default=None, help="SEQ:HASH from an earlier `onemap audit tip`: detects deleted newest entries")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def verify(anchor, database_url) -> None:
    """Recompute the hash chain; exit 1 naming every changed, deleted or reordered entry."""
    _, store = _store(database_url)
    try:
        verdict = audit_log.verify(store, anchor)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--anchor") from None
    finally:
        store.close()
    if verdict.ok:
        click.echo(f"audit log intact: {verdict.checked} entries, chain verified")
        return
    for problem in verdict.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    click.echo(f"audit log NOT intact: {len(verdict.problems)} problem(s) in {verdict.checked} entries", err=True)
    sys.exit(1)


@click.command("rekey")
@click.option("--new-key-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="file holding the new data key (64 hex digits); generated, mode 0600, when missing")
@click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None)
def rekey(new_key_file: Path, database_url: str | None) -> None:
    """Re-encrypt the store's sealed columns with a new data key, in one transaction.

    The current key (ONEMAP_DATA_KEY_FILE or the default file) must be the store's. Stop the
    servers first: their connections hold the old key. Afterwards start everything with
    ONEMAP_DATA_KEY_FILE set to the new file; the old key no longer opens the store.
    """
    from gis.security.encryption import DataKey, DataKeyError
    from gis.security.rekey import rekey as reseal

    settings, store = _store(database_url)
    try:
        new = DataKey.load(settings.database.model_copy(update={"data_key": None, "data_key_file": new_key_file}))
        count = reseal(store, new, lambda layer, n: click.echo(f"{layer}: {n:,} values resealed so far", err=True))
    except DataKeyError as err:
        raise click.ClickException(str(err)) from None
    finally:
        store.close()
    click.echo(f"resealed {count:,} values with key {new.key_id}; from now on set ONEMAP_DATA_KEY_FILE={new_key_file}")
