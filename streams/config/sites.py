"""sites.yaml: the shaft ledger (台账) — shafts, their townships, coordinates, status and
the person responsible."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from streams.config.base import Section, located, unique_ids


class Person(Section):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Site(Section):
    """One entry of the shaft ledger (台账)."""

    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    township: str
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    status: Literal["sealed", "resealed", "closed", "backfilled", "breached", "active_licensed"]
    sealed_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    responsible: Person
    unit: str = ""  # the responsible unit (单位), e.g. the township's safety office


Status = Literal["sealed", "resealed", "closed", "backfilled", "breached", "active_licensed"]


class PatrolPolicy(Section):
    """How often patrols must visit: visits a week per site, by its status (``default`` for
    the rest). County plans ask for three a week at every site."""

    weekly_visits: dict[Status | Literal["default"], int] = {"default": 3, "backfilled": 1, "active_licensed": 0}

    @field_validator("weekly_visits")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if not 0 <= n <= 50}
        if bad:
            raise ValueError(f"visits a week are 0..50, got {bad}")
        return v


class SitesFile(Section):
    county: str
    townships: list[str] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)
    patrol: PatrolPolicy = PatrolPolicy()

    @model_validator(mode="after")
    def _townships_known(self) -> SitesFile:
        for i, site in enumerate(self.sites):
            if site.township not in self.townships:
                raise located(("sites", i, "township"), f"township {site.township!r} is not in townships")
        unique_ids(self.sites, "sites")
        return self
