"""The demo city's cases: a plausible recent history of the loop, consistent with each case's steps.

At scale 1 the city handles about 1.25 million cases a year; the demo makes the last `days` days
of them (30 by default: the suite builds the city twice per run) up to a fixed moment, so the same
(scale, seed) gives the same cases. Each case walks its workflow from the report as far as time
allows: registered within the hour, dispatched to the department of its category, disposed of in
that department's usual time (some past the deadline), some feedback rejected once and reworked,
then checked and closed. Every step is written to the case's history, so the numbers computed
from the cases and from their histories agree.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gis.cases.history import CaseHistory, iso
from gis.cases.workflow import Workflow
from gis.storage.store import Store

CASES_PER_YEAR = 1_250_000  # at scale 1
DEFAULT_DAYS = 30
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # the demo's "now": fixed, so the demo is deterministic
# the department each category goes to, and its usual disposal time (hours, calendar)
DEPARTMENTS = {"C01": "SW", "C02": "JT", "C03": "CG", "C04": "YL", "C05": "ZJ", "C06": "CG",
               "E01": "CG", "E02": "CG", "E03": "ZJ", "E04": "YJ", "E05": "CG", "E06": "SW"}
DISPOSAL_HOURS = {"SW": 20.0, "JT": 14.0, "CG": 8.0, "YL": 30.0, "ZJ": 36.0, "YJ": 1.5}
CATEGORY_MIX = {"C01": 0.12, "C02": 0.08, "C03": 0.10, "C04": 0.04, "C05": 0.02, "C06": 0.02,
                "E01": 0.25, "E02": 0.08, "E03": 0.06, "E04": 0.01, "E05": 0.17, "E06": 0.05}
SOURCES = {"grid_member": 0.72, "hotline_12345": 0.15, "camera_alert": 0.09, "public": 0.04}
PRIORITIES = {"normal": 0.85, "urgent": 0.12, "emergency": 0.03}
# the share of reports per hour of the day (local time): the street's working day
HOURLY = np.array([1, 1, 1, 1, 1, 2, 4, 8, 12, 13, 12, 10, 7, 9, 11, 11, 10, 8, 6, 4, 3, 2, 1, 1], dtype=float)
DECLINED, REJECTED = 0.04, 0.08
SURNAMES, GIVEN = "王李张刘陈杨赵黄周吴", "伟芳娜敏静丽强磊军洋"
# the path of a case, as (action, actor's role); a rejected review adds reject + feed_back once more
PATH = [("register", "dispatcher"), ("dispatch", "dispatcher"), ("accept", "department"),
        ("feed_back", "department"), ("verify", "staff"), ("close", "dispatcher")]


def count(scale: float, days: int = DEFAULT_DAYS) -> int:
    return max(50, round(CASES_PER_YEAR * scale * days / 365))


def generate(workflow: Workflow, points: np.ndarray, grid: list, street: list, scale: float, seed: int,
             days: int = DEFAULT_DAYS) -> tuple[dict[str, list], np.ndarray, list[dict]]:
    """(attribute columns, geometries, history rows) of the demo's cases, case k with id k + 1."""
    rng = np.random.default_rng([seed, 15])
    n = count(scale, days)
    at = rng.integers(0, len(points), n)
    zone = workflow.working_time.zone
    start = END - dt.timedelta(days=days)
    day = rng.integers(0, days, n)
    weekday = np.array([(start + dt.timedelta(days=int(d))).astimezone(zone).isoweekday() for d in range(days)])
    # weekends see fewer reports: redraw most of their days
    redraw = (weekday[day] >= 6) & (rng.random(n) < 0.5)
    day[redraw] = rng.integers(0, days, int(redraw.sum()))
    hour = rng.choice(24, n, p=HOURLY / HOURLY.sum())
    second = rng.integers(0, 3600, n)
    categories = _pick(rng, CATEGORY_MIX, n)
    priorities = _pick(rng, PRIORITIES, n)
    columns: dict[str, list] = {name: [] for name in (
        "case_no", "kind", "category", "subcategory", "description", "component_id", "source", "reporter",
        "department", "status", "priority", "reported_at", "registered_at", "dispatched_at", "fed_back_at",
        "verified_at", "closed_at", "deadline", "reopened", "grid", "street")}
    history: list[dict] = []
    sources = _pick(rng, SOURCES, n)
    order = np.lexsort((second, hour, day))  # ids follow the time of report, as a live system's do
    for k, i in enumerate(order.tolist()):
        case_id = k + 1
        local_midnight = dt.datetime.combine((start + dt.timedelta(days=int(day[i]))).astimezone(zone).date(), dt.time(0), zone)
        reported = (local_midnight + dt.timedelta(hours=int(hour[i]), seconds=int(second[i]))).astimezone(dt.UTC)
        category, priority = categories[i], priorities[i]
        row = {name: None for name in columns}
        row.update(
            case_no=f"{workflow.number_prefix}-{reported.astimezone(zone).year}-{case_id:07d}",
            kind=workflow.categories[category].kind, category=category, subcategory=f"{category}{1 + k % 9:02d}",
            description=f"{workflow.categories[category].title_zh}问题", source=sources[i],
            reporter=SURNAMES[k % 10] + GIVEN[(k // 10) % 10] + GIVEN[(k // 100) % 10], status=workflow.initial, priority=priority, reported_at=reported, reopened=0,
            grid=grid[int(at[i])], street=street[int(at[i])],
        )
        if row["kind"] == "component":
            row["component_id"] = int(at[i]) + 1
        steps = [("report", None, workflow.initial, reported, "staff")]
        _walk(workflow, rng, row, steps, reported)
        for step, (action, before, after, moment, role) in enumerate(steps, start=1):
            history.append({"case_id": case_id, "step": step, "action": action, "from_status": before,
                            "to_status": after, "at": iso(moment), "subject": f"demo-{role}", "role": role,
                            "department": row["department"] if action == "dispatch" else None,
                            "note": "已处置" if action == "feed_back" else None,
                            "reason": "处置不到位" if action == "reject" else ("不属于受理范围" if action == "decline" else None)})
        for name in columns:
            columns[name].append(row[name])
    return columns, points[at[order]], history


def write_history(store: Store, rows: list[dict]) -> None:
    """Replace the history of every case with the demo's, in one transaction."""
    history = CaseHistory(store).ensure()
    with store.engine.begin() as conn:
        conn.execute(history.table.delete())
        for start in range(0, len(rows), 20_000):
            conn.execute(history.table.insert(), rows[start:start + 20_000])


def _walk(workflow: Workflow, rng, row: dict, steps: list, moment: dt.datetime) -> None:
    """Move the case along its path while each next step lies before the demo's END."""
    if rng.random() < DECLINED:
        when = (moment + dt.timedelta(minutes=float(rng.uniform(10, 90)))).replace(microsecond=0)
        if when < END:
            _step(workflow, row, steps, "decline", when, "dispatcher")
        return
    path = list(PATH)
    if rng.random() < REJECTED:
        at = path.index(("verify", "staff"))
        path[at:at] = [("reject", "staff"), ("feed_back", "department")]
    department = DEPARTMENTS[row["category"]]
    for action, role in path:
        if action in ("register", "dispatch", "accept"):
            wait = dt.timedelta(minutes=float(rng.gamma(2.0, 15.0)))
        elif action == "feed_back":
            wait = dt.timedelta(hours=float(rng.gamma(2.0, DISPOSAL_HOURS[department] / 2)))
        else:
            wait = dt.timedelta(hours=float(rng.gamma(2.0, 1.0)))
        moment = (moment + wait).replace(microsecond=0)  # times of the loop are kept to the second
        if moment >= END:
            return
        if action == "dispatch":
            row["department"] = department
            row["deadline"] = workflow.deadline(row["category"], row["priority"], moment).replace(microsecond=0)
        _step(workflow, row, steps, action, moment, role)


def _step(workflow: Workflow, row: dict, steps: list, action: str, moment: dt.datetime, role: str) -> None:
    rule = workflow.actions[action]
    steps.append((action, row["status"], rule.to, moment, role))
    row["status"] = rule.to
    if rule.stamp:
        row[rule.stamp] = moment
    if rule.reopen:
        row["reopened"] += 1


def _pick(rng, weights: dict[str, float], n: int) -> list[str]:
    names = list(weights)
    p = np.array([weights[k] for k in names])
    return [names[j] for j in rng.choice(len(names), n, p=p / p.sum()).tolist()]
