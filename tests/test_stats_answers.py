"""/stats keeps whole-area answers per data version: asked again, it does not aggregate again;
after any write to the layer, from whatever writer, the next answer has moved with it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import event, text


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def grouped_statements(store, fn):
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "GROUP BY" in statement and "grid" in statement:  # not the tiles' hexagon cells
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        result = fn()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return result, seen


def total(http, indicator: str, by: str = "city") -> float:
    response = http.get("/stats", params={"indicator": indicator, "by": by})
    assert response.status_code == 200, response.text[:300]
    return response.json()["total"]


def test_the_same_question_again_is_answered_without_aggregating(http, store):
    first = total(http, "cameras", "grid")
    again, ran = grouped_statements(store, lambda: total(http, "cameras", "grid"))
    assert again == first and ran == []


def external_write(store, statement: str, params: dict) -> None:
    """One write as another department's system makes it: its own connection, not OneMap's pool."""
    if store.postgis:
        with store.engine.begin() as conn:
            conn.execute(text(statement), params)
        return
    import sqlean

    from gis.storage.engine import SPATIALITE, gpkg_path

    raw = sqlean.connect(str(gpkg_path(store.settings.database.database_url)), timeout=15)
    try:
        raw.enable_load_extension(True)
        raw.load_extension(SPATIALITE)
        raw.execute("SELECT EnableGpkgAmphibiousMode()")
        with raw:
            raw.execute(statement, params)
    finally:
        raw.close()


def test_a_write_from_outside_onemap_moves_the_next_answer(http, store):
    """A direct UPDATE (another department's system): the layer triggers bump the version."""
    table = f'"{store.schema}".cameras' if store.postgis else "cameras"
    before = total(http, "cameras_offline")
    assert total(http, "cameras_offline") == before  # kept
    with store.engine.connect() as conn:
        camera = conn.execute(text(f"SELECT id FROM {table} WHERE status <> 'offline' ORDER BY id LIMIT 1")).scalar_one()
        status = conn.execute(text(f"SELECT status FROM {table} WHERE id = :i"), {"i": camera}).scalar_one()
    external_write(store, f"UPDATE {table} SET status = 'offline' WHERE id = :i", {"i": camera})
    try:
        assert total(http, "cameras_offline") == before + 1
    finally:
        external_write(store, f"UPDATE {table} SET status = :s WHERE id = :i", {"s": status, "i": camera})
    assert total(http, "cameras_offline") == before
