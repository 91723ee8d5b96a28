"""The case workflow as data: states, actions, who may take them, and deadlines.

Read from one file (layers/workflows/cases.yml by default). Everything the loop decides comes from
here: whether an action may leave a status (else 409 with the actions that may), whether a role
may take it and on which cases (`scope`), what the request must carry, which time attribute it
stamps and when a deadline starts. The checks are pure functions of the case's row and the
principal, so the HTTP layer (gis.cases.routes) and any other caller decide the same way.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gis.cases.worktime import WorkingTime

Requirement = Literal["department", "note", "reason"]
Scope = Literal["grid", "department"]
Priority = Literal["normal", "urgent", "emergency"]


class State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    title_zh: str
    final: bool = False


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sources: list[str] = Field(alias="from", min_length=1)
    to: str
    roles: list[str] = Field(min_length=1)
    scope: Scope | None = None
    requires: list[Requirement] = Field(default_factory=list)
    stamp: str | None = None
    deadline: Literal["start"] | None = None
    reopen: bool = False


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["component", "event"]
    title: str
    title_zh: str
    hours: dict[Priority, float]

    @model_validator(mode="after")
    def _every_priority(self) -> "Category":
        missing = sorted(set(Priority.__args__) - set(self.hours))
        if missing:
            raise ValueError(f"hours lacks priorities {missing}")
        return self


class Report(BaseModel):
    """Who may open a case (`POST /cases`); a caller limited to grids or streets reports inside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[str] = Field(min_length=1)


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: str
    number_prefix: str = Field(pattern=r"^[A-Z]{1,8}$")  # case numbers: PREFIX-YEAR-0001234
    initial: str
    report: Report
    states: dict[str, State]
    actions: dict[str, Action]
    categories: dict[str, Category]
    working_time: WorkingTime

    @model_validator(mode="after")
    def _consistent(self) -> "Workflow":
        if self.initial not in self.states:
            raise ValueError(f"initial status {self.initial!r} is not a state")
        for name, action in self.actions.items():
            unknown = sorted({*action.sources, action.to} - set(self.states))
            if unknown:
                raise ValueError(f"action {name}: unknown states {unknown}")
            leaving_final = [s for s in action.sources if self.states[s].final]
            if leaving_final:
                raise ValueError(f"action {name} leaves final states {leaving_final}")
        return self

    @classmethod
    def load(cls, path: Path) -> "Workflow":
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except Exception as err:  # the file is what the operator has to fix
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def for_catalog(cls, layers_dir: Path, catalog) -> "Workflow | None":
        """The shipped place's workflow (layers_dir/workflows/cases.yml) when its layer is in the catalog."""
        path = layers_dir / "workflows" / "cases.yml"
        if not path.is_file():
            return None
        workflow = cls.load(path)
        return workflow if workflow.layer in catalog else None

    # -- what the loop asks ------------------------------------------------------------------------

    @property
    def report_roles(self) -> list[str]:
        return self.report.roles

    @cached_property
    def stamps(self) -> frozenset[str]:
        """The case attributes only transitions set (besides status, department, deadline)."""
        return frozenset(a.stamp for a in self.actions.values() if a.stamp)

    @cached_property
    def open_states(self) -> tuple[str, ...]:
        return tuple(name for name, state in self.states.items() if not state.final)

    def available(self, status: str) -> list[str]:
        """The actions that may leave a status, whoever takes them."""
        return [name for name, action in self.actions.items() if status in action.sources]

    def permitted(self, status: str, role: str) -> list[str]:
        """The actions a role may take on a case in this status (its scope checked separately)."""
        return [name for name in self.available(status) if role in self.actions[name].roles]

    def deadline(self, category: str, priority: str, start: dt.datetime) -> dt.datetime:
        """When the department's feedback is due: the category's working hours after `start`."""
        hours = self.categories[category].hours[priority]  # type: ignore[index]
        return self.working_time.add(start, dt.timedelta(hours=hours))
