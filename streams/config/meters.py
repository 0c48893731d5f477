"""meters.yaml: the utility's meters, the site each feeds, cut-off lines (expected
zero), irrigation plans, and the calendar of days the sites are closed."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from detectors.power import MeterSpec
from streams.config.base import Section, located, unique_ids


class IrrigationPlan(Section):
    months: list[int] = Field(min_length=1)
    hours: tuple[int, int] = (6, 20)  # local hours [start, end)
    pump_kw: float = Field(gt=0)

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        bad = [m for m in v if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1..12, got {bad}")
        return v


class Meter(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    site_id: str
    kind: Literal["mine_supply", "irrigation", "village", "workshop"]
    # A mine line the utility cut when the mine was closed: any draw is unexplained.
    expected_zero: bool = False
    rated_kw: float = Field(gt=0)
    irrigation: IrrigationPlan | None = None
    interval_s: int = Field(900, ge=60, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> Meter:
        if self.kind == "irrigation" and self.irrigation is None:
            raise located(("irrigation",), "an irrigation meter needs an irrigation plan (months, hours, pump_kw)")
        if self.kind != "irrigation" and self.irrigation is not None:
            raise located(("irrigation",), f"only irrigation meters have an irrigation plan, this one is {self.kind!r}")
        return self

    def spec(self, closed_dates: tuple[str, ...] = ()) -> MeterSpec:
        """This meter as the power rules see it (``MetersFile.specs`` adds its calendar)."""
        plan = self.irrigation
        return MeterSpec(
            meter_id=self.id, site_id=self.site_id, kind=self.kind, expected_zero=self.expected_zero,
            rated_kw=self.rated_kw, interval_s=self.interval_s,
            irrigation_months=tuple(plan.months) if plan else (), irrigation_hours=tuple(plan.hours) if plan else (0, 0),
            pump_kw=plan.pump_kw if plan else 0.0, closed_dates=closed_dates,
        )


MAX_CLOSURE_DAYS = 366


class Closure(Section):
    """Days the sites are closed: public holidays, the Spring Festival, an announced
    shutdown. The power rules neither judge nor learn the load on them (nor on the nights
    either side); reconnection, irrigation, register and silence rules still run."""

    date: datetime.date | None = None  # one day...
    start: datetime.date | None = None  # ...or every day from start to end, both included
    end: datetime.date | None = None
    why: str = Field(min_length=1)
    meters: list[str] | None = None  # only these meters; every meter when absent

    @model_validator(mode="after")
    def _one_span(self) -> Closure:
        if (self.date is None) == (self.start is None and self.end is None):
            raise located((), "a closure has either a date, or a start and an end")
        if self.date is None and (self.start is None or self.end is None):
            raise located(("end" if self.end is None else "start",), "a closure from start to end needs both")
        if self.date is None and self.end < self.start:
            raise located(("end",), f"end {self.end} is before start {self.start}")
        if self.date is None and (self.end - self.start).days >= MAX_CLOSURE_DAYS:
            raise located(("end",), f"a closure of more than {MAX_CLOSURE_DAYS} days is not a closure: "
                          "take the meter out, or set expected_zero")
        return self

    def days(self) -> list[str]:
        if self.date is not None:
            return [self.date.isoformat()]
        return [(self.start + datetime.timedelta(days=i)).isoformat() for i in range((self.end - self.start).days + 1)]


# The record contract's floor (streams.contract.records.EARLIEST_TS, 1990-01-01): no feed
# can be set to accept older records (tests/streams/config/test_power_config.py checks the two agree).
CONTRACT_EARLIEST = datetime.date(1990, 1, 1)


def history_from_problem(day: datetime.date) -> str | None:
    if day < CONTRACT_EARLIEST:
        return f"the record contract accepts nothing before {CONTRACT_EARLIEST}"
    return None


class MetersFile(Section):
    utility: str
    # The oldest reading accepted (local date at UTC): for back-filling a meter's history.
    # Older readings go to dead-letters with the reason. Rules judge each reading by its own time.
    history_from: datetime.date = datetime.date(2000, 1, 1)
    meters: list[Meter]
    calendar: list[Closure] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> MetersFile:
        if problem := history_from_problem(self.history_from):
            raise located(("history_from",), problem)
        unique_ids(self.meters, "meters")
        known = {m.id for m in self.meters}
        for i, closure in enumerate(self.calendar):
            for j, meter_id in enumerate(closure.meters or ()):
                if meter_id not in known:
                    raise located(("calendar", i, "meters", j), f"meter {meter_id!r} is not in this file")
        return self

    def closed_dates(self, meter_id: str) -> tuple[str, ...]:
        """The local dates on which this meter's site is closed, in order."""
        days = {d for c in self.calendar if c.meters is None or meter_id in c.meters for d in c.days()}
        return tuple(sorted(days))

    def specs(self) -> dict[str, MeterSpec]:
        """Every meter as the power rules see it, with its calendar."""
        return {m.id: m.spec(self.closed_dates(m.id)) for m in self.meters}
