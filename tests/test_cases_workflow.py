"""The workflow file and its working-time deadlines, as gis.cases reads them (no server needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from gis.cases.workflow import Workflow
from gis.cases.worktime import WorkingTime
from gis.catalog import Catalog

LAYERS = Path(__file__).resolve().parent.parent / "layers"
SHIPPED = LAYERS / "workflows" / "cases.yml"
OFFICE = WorkingTime(timezone="Asia/Shanghai", days=[1, 2, 3, 4, 5], hours=[("08:30", "12:00"), ("13:30", "17:30")])
ZONE = OFFICE.zone


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZONE)


@pytest.mark.parametrize(("start", "hours", "due"), [
    (local(2026, 12, 7, 9, 0), 2, local(2026, 12, 7, 11, 0)),       # inside the morning
    (local(2026, 12, 7, 9, 0), 4, local(2026, 12, 7, 14, 30)),      # over lunch
    (local(2026, 12, 11, 17, 0), 4, local(2026, 12, 14, 12, 0)),    # Friday evening to Monday
    (local(2026, 12, 12, 10, 0), 1, local(2026, 12, 14, 9, 30)),    # reported on Saturday
    (local(2026, 12, 7, 12, 30), 0.5, local(2026, 12, 7, 14, 0)),   # during lunch
    (local(2026, 12, 7, 20, 0), 7.5, local(2026, 12, 8, 17, 30)),   # a whole working day, from the evening
])
def test_a_deadline_counts_only_working_hours(start, hours, due):
    assert OFFICE.add(start, dt.timedelta(hours=hours)) == due
    assert OFFICE.elapsed(start, due) == dt.timedelta(hours=hours)


def test_elapsed_working_time_is_zero_backwards_and_outside_hours():
    assert OFFICE.elapsed(local(2026, 12, 7, 10, 0), local(2026, 12, 7, 9, 0)) == dt.timedelta(0)
    assert OFFICE.elapsed(local(2026, 12, 12, 9, 0), local(2026, 12, 13, 18, 0)) == dt.timedelta(0)  # a weekend


def test_a_calendar_without_hours_is_refused():
    with pytest.raises(ValueError):
        WorkingTime(hours=[("12:00", "08:30")])
    with pytest.raises(ValueError):
        WorkingTime(hours=[("08:00", "12:00")], days=[8])


def test_the_shipped_workflow_fits_its_layer():
    workflow = Workflow.load(SHIPPED)
    layer = Catalog.load(LAYERS)[workflow.layer]
    names = {a.name for a in layer.attributes}
    assert workflow.stamps <= names and {"status", "department", "deadline", "reopened"} <= names
    # the style colours statuses the workflow has
    match = layer.style.paint["circle-color"]
    assert set(match[2:-1:2]) <= set(workflow.states)
    # every open status has a way on; a final one has none
    for name, state in workflow.states.items():
        assert bool(workflow.available(name)) != state.final, name
    assert workflow.permitted("reported", "dispatcher") == ["register", "decline"]
    assert workflow.permitted("fed_back", "staff") == ["verify", "reject"]


def test_a_workflow_with_an_unknown_or_final_source_state_is_refused(tmp_path):
    document = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    document["actions"]["close"]["to"] = "archived"
    (tmp_path / "a.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown states"):
        Workflow.load(tmp_path / "a.yml")
    document = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    document["actions"]["register"]["from"] = ["closed"]
    (tmp_path / "b.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ValueError, match="leaves final states"):
        Workflow.load(tmp_path / "b.yml")
