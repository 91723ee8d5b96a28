"""The case loop over HTTP, with a real key per role, on both backends: a case goes from report to
close (上报 → 立案 → 派遣 → 处置 → 反馈 → 核查 → 结案), and every way of stepping out of line is refused
as the workflow file says (layers/workflows/cases.yml).

The server's clock is the test's: deadlines pass by moving it, not by sleeping.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import shapely
from sqlalchemy import select

from gis.cases.history import CaseHistory
from gis.security.tables import tables_for
from tests.security_support import api_key, client, security_server

MONDAY_9AM = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)  # 09:00 in Asia/Shanghai


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, **delta) -> None:
        with self._lock:
            self.now += dt.timedelta(**delta)


@pytest.fixture(scope="module")
def clock(store):  # one per backend: each starts on Monday morning
    return Clock(MONDAY_9AM)


@pytest.fixture(scope="module")
def city(store, clock):
    with security_server(store, clock=clock) as base:
        admin = api_key(store, "admin", subject="loop-admin")
        with client(base, admin) as http:
            grids = http.get("/collections/grids/items", params={"limit": 2, "f": "json"}).json()["features"]
        here, there = grids
        keys = {
            "staff": api_key(store, "staff", subject="grid-member", grids=[here["properties"]["grid_code"]]),
            "staff_elsewhere": api_key(store, "staff", subject="other-member", grids=[there["properties"]["grid_code"]]),
            "dispatcher": api_key(store, "dispatcher", subject="dispatcher"),
            "water": api_key(store, "department", subject="water-handler", departments=["SW"]),
            "city_management": api_key(store, "department", subject="cg-handler", departments=["CG"]),
            "supervisor": api_key(store, "supervisor", subject="supervisor"),
            "admin": admin,
        }
        point = shapely.geometry.shape(here["geometry"]).representative_point()
        yield {"base": base, "keys": keys, "grid": here["properties"]["grid_code"], "point": [point.x, point.y]}


def http(city, who: str | None):
    return client(city["base"], city["keys"][who] if who else None)


def report(city, who="staff", **properties) -> tuple[int, str]:
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": city["point"]},
            "properties": {"category": "C01", "source": "grid_member", "description": "井盖破损", "priority": "urgent",
                           **properties}}
    with http(city, who) as c:
        answer = c.post("/cases", json=body, headers={"Content-Type": "application/geo+json"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.headers["ETag"]


def act(city, who: str, case_id: int, etag: str, action: str, **fields):
    with http(city, who) as c:
        return c.post(f"/cases/{case_id}/transitions", json={"action": action, **fields}, headers={"If-Match": etag})


def step(city, who: str, case_id: int, etag: str, action: str, **fields) -> str:
    answer = act(city, who, case_id, etag, action, **fields)
    assert answer.status_code == 200, (action, answer.text)
    return answer.headers["ETag"]


def history(city, case_id: int, who="admin") -> dict:
    with http(city, who) as c:
        answer = c.get(f"/cases/{case_id}/history")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_case_goes_from_report_to_close(city, store, clock):
    case_id, etag = report(city)
    with http(city, "dispatcher") as c:
        item = c.get(f"/collections/cases/items/{case_id}", params={"f": "json"}).json()
    assert item["properties"]["status"] == "reported"
    assert re.fullmatch(r"PD-2026-\d{7}", item["properties"]["case_no"])
    assert item["properties"]["grid"] == city["grid"] and item["properties"]["kind"] == "component"
    etag = step(city, "dispatcher", case_id, etag, "register")
    etag = step(city, "dispatcher", case_id, etag, "dispatch", department="SW")
    etag = step(city, "water", case_id, etag, "accept")
    clock.advance(hours=1)
    etag = step(city, "water", case_id, etag, "feed_back", note="更换井盖")
    etag = step(city, "staff", case_id, etag, "verify")
    answer = act(city, "dispatcher", case_id, etag, "close")
    assert answer.status_code == 200
    case = answer.json()["properties"]
    assert case["status"] == "closed" and case["department"] == "SW"
    # urgent C01: 4 working hours from the dispatch at 09:00 Monday: 09:00-12:00, then 13:30-14:30 local
    assert case["deadline"] == "2026-12-07T06:30:00Z"
    loop = history(city, case_id)
    assert [s["action"] for s in loop["history"]] == ["report", "register", "dispatch", "accept", "feed_back", "verify", "close"]
    assert [s["role"] for s in loop["history"]][-2:] == ["staff", "dispatcher"]
    assert loop["history"][4]["note"] == "更换井盖" and loop["overdue"] is False
    # every step is in the audit chain too, beside the history
    audit = tables_for(store).audit
    with store.engine.connect() as conn:
        actions = conn.execute(select(audit.c.action).where(audit.c.target == f"cases/{case_id}").order_by(audit.c.seq)).scalars().all()
    assert actions == ["case.report", "case.register", "case.dispatch", "case.accept", "case.feed_back", "case.verify", "case.close"]


def test_an_action_the_status_does_not_allow_is_409_naming_those_it_does(city):
    case_id, etag = report(city)
    answer = act(city, "dispatcher", case_id, etag, "close")
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["allowed"] == ["register", "decline"] and problem["status_now"] == "reported"
    assert "register" in problem["detail"]
    assert history(city, case_id)["status"] == "reported"  # nothing moved


def test_a_role_that_may_not_act_is_403(city):
    case_id, etag = report(city)
    answer = act(city, "staff", case_id, etag, "register")
    assert answer.status_code == 403 and "dispatcher" in answer.json()["detail"]


def test_the_wrong_department_may_not_touch_the_case(city):
    case_id, etag = report(city)
    etag = step(city, "dispatcher", case_id, etag, "register")
    etag = step(city, "dispatcher", case_id, etag, "dispatch", department="SW")
    answer = act(city, "city_management", case_id, etag, "accept")
    assert answer.status_code == 403 and "SW" in answer.json()["detail"]
    step(city, "water", case_id, etag, "accept")


def test_a_grid_member_outside_the_grid_neither_sees_nor_reports_there(city):
    case_id, etag = report(city)
    with http(city, "staff_elsewhere") as c:
        assert c.get(f"/cases/{case_id}/history").status_code == 404
        assert c.post(f"/cases/{case_id}/transitions", json={"action": "verify"}, headers={"If-Match": etag}).status_code == 404
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": city["point"]},
                "properties": {"category": "E05", "source": "grid_member"}}
        refused = c.post("/cases", json=body, headers={"Content-Type": "application/geo+json"})
    assert refused.status_code == 403, refused.text
    with http(city, None) as c:  # the public: the numbers of the loop, no case
        assert c.get(f"/cases/{case_id}/history").status_code == 404


def test_of_two_concurrent_dispatches_exactly_one_wins(city):
    case_id, etag = report(city)
    etag = step(city, "dispatcher", case_id, etag, "register")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda d: act(city, "dispatcher", case_id, etag, "dispatch", department=d), ["SW", "CG"]))
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200).json()["properties"]["department"]
    steps = history(city, case_id)["history"]
    assert [s["action"] for s in steps].count("dispatch") == 1 and steps[-1]["department"] == winner


def test_a_rejected_review_sends_the_case_back_to_the_department_with_the_reason(city):
    case_id, etag = report(city)
    for who, action, fields in [("dispatcher", "register", {}), ("dispatcher", "dispatch", {"department": "SW"}),
                                ("water", "accept", {}), ("water", "feed_back", {"note": "已处理"})]:
        etag = step(city, who, case_id, etag, action, **fields)
    assert act(city, "staff", case_id, etag, "reject").status_code == 400  # a reason is required
    answer = act(city, "staff", case_id, etag, "reject", reason="井盖仍松动")
    assert answer.status_code == 200
    case = answer.json()["properties"]
    assert case["status"] == "in_progress" and case["reopened"] == 1 and case["department"] == "SW"
    assert history(city, case_id)["history"][-1]["reason"] == "井盖仍松动"
    step(city, "water", case_id, answer.headers["ETag"], "feed_back", note="已加固")


def test_a_deadline_passes_while_the_department_holds_the_case(city, clock):
    case_id, etag = report(city, priority="emergency", category="E04")  # 0.5 working hours
    etag = step(city, "dispatcher", case_id, etag, "register")
    etag = step(city, "dispatcher", case_id, etag, "dispatch", department="YJ")
    assert history(city, case_id)["overdue"] is False
    clock.advance(minutes=31)
    assert history(city, case_id)["overdue"] is True


def test_a_transition_needs_if_match_and_a_known_action(city, store):
    case_id, etag = report(city)
    with http(city, "dispatcher") as c:
        assert c.post(f"/cases/{case_id}/transitions", json={"action": "register"}).status_code == 428
        assert c.post(f"/cases/{case_id}/transitions", json={"action": "fly"}, headers={"If-Match": etag}).status_code == 400
        assert c.post(f"/cases/{case_id}/transitions", json={"action": "register", "x": 1}, headers={"If-Match": etag}).status_code == 400
        assert c.post(f"/cases/{case_id}/transitions", json={"action": "register"}, headers={"If-Match": '"stale"'}).status_code == 412
        assert c.post("/cases/999999999/transitions", json={"action": "register"}, headers={"If-Match": etag}).status_code == 404
        # a report names no status of its own: the workflow sets it
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": city["point"]},
                "properties": {"category": "C01", "source": "public", "status": "closed"}}
        assert c.post("/cases", json=body, headers={"Content-Type": "application/geo+json"}).status_code == 400
        # nor does it lie outside the city (a stray point would stretch the cases' extent over the world)
        body["properties"].pop("status")
        body["geometry"]["coordinates"] = [0.0, 0.0]
        outside = c.post("/cases", json=body, headers={"Content-Type": "application/geo+json"})
        assert outside.status_code == 400 and "outside the city" in outside.text, outside.text
    assert [s["action"] for s in CaseHistory(store).read(case_id)] == ["report"]


def test_the_demo_cases_agree_with_their_histories(store):
    """Every demo case's status and stamps are those its last history steps set."""
    table = store.tables["cases"]
    history = CaseHistory(store).table
    with store.engine.connect() as conn:
        cases = {r.id: r for r in conn.execute(select(table.c.id, table.c.status, table.c.closed_at).where(table.c.id <= 2000))}
        last = {}
        for row in conn.execute(select(history.c.case_id, history.c.to_status, history.c.at).where(history.c.case_id <= 2000)
                                .order_by(history.c.case_id, history.c.step)):
            last[row.case_id] = row
    assert len(cases) == 2000
    assert all(last[i].to_status == c.status for i, c in cases.items())
    closed = [i for i, c in cases.items() if c.status == "closed"]
    assert closed and all(cases[i].closed_at.strftime("%Y-%m-%dT%H:%M:%SZ") == last[i].at for i in closed)
