"""Working time: deadlines count only the city's office hours.

A case dispatched on Friday at 17:00 with four working hours is due on Monday at 12:00, not on
Friday night. The calendar is the workflow file's (`working_time`): the days of the week and the
periods of each day, in the city's time zone. Public holidays are not modelled yet.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_DAYS = 366 * 2  # a deadline further than this means the calendar has (almost) no hours


class WorkingTime(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)  # ISO weekdays
    hours: list[tuple[str, str]] = Field(min_length=1)

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not all(1 <= d <= 7 for d in value):
            raise ValueError("days are ISO weekdays, 1 (Monday) to 7 (Sunday)")
        return sorted(set(value))

    @model_validator(mode="after")
    def _periods(self) -> "WorkingTime":
        ZoneInfo(self.timezone)  # raises for an unknown zone
        end = dt.time(0)
        for start, stop in self.periods:
            if not (end <= start < stop):
                raise ValueError("working periods must be ordered, non-empty and not overlap")
            end = stop
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def periods(self) -> list[tuple[dt.time, dt.time]]:
        return [(dt.time.fromisoformat(a), dt.time.fromisoformat(b)) for a, b in self.hours]

    def add(self, start: dt.datetime, span: dt.timedelta) -> dt.datetime:
        """The moment `span` of working time after `start` (an aware datetime; UTC comes back)."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local = start.astimezone(self.zone)
        left = span
        day = local.date()
        for _ in range(MAX_DAYS):
            if day.isoweekday() in self.days:
                for begin, end in self.periods:
                    a = dt.datetime.combine(day, begin, self.zone)
                    b = dt.datetime.combine(day, end, self.zone)
                    a = max(a, local)
                    if a >= b:
                        continue
                    if a + left <= b:
                        return (a + left).astimezone(dt.UTC)
                    left -= b - a
            day += dt.timedelta(days=1)
        raise ValueError(f"no {span} of working time within {MAX_DAYS} days: check working_time")

    def elapsed(self, start: dt.datetime, stop: dt.datetime) -> dt.timedelta:
        """Working time between two moments (0 when stop is not after start)."""
        if stop <= start:
            return dt.timedelta(0)
        a, b = start.astimezone(self.zone), stop.astimezone(self.zone)
        total = dt.timedelta(0)
        day = a.date()
        while day <= b.date():
            if day.isoweekday() in self.days:
                for begin, end in self.periods:
                    lo = max(dt.datetime.combine(day, begin, self.zone), a)
                    hi = min(dt.datetime.combine(day, end, self.zone), b)
                    if hi > lo:
                        total += hi - lo
            day += dt.timedelta(days=1)
        return total
