"""meters.yaml: the utility's meters, the site each feeds, cut-off lines (expected
zero) and irrigation plans."""

from __future__ import annotations

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

    def spec(self) -> MeterSpec:
        """This meter as the power rules see it."""
        plan = self.irrigation
        return MeterSpec(
            meter_id=self.id, site_id=self.site_id, kind=self.kind, expected_zero=self.expected_zero,
            rated_kw=self.rated_kw, interval_s=self.interval_s,
            irrigation_months=tuple(plan.months) if plan else (), irrigation_hours=tuple(plan.hours) if plan else (0, 0),
            pump_kw=plan.pump_kw if plan else 0.0,
        )


class MetersFile(Section):
    utility: str
    meters: list[Meter]

    @model_validator(mode="after")
    def _unique_ids(self) -> MetersFile:
        unique_ids(self.meters, "meters")
        return self
