"""fences.yaml: electronic-fence zones (lon/lat polygons or cell ids), the sites each
protects, their hours, the watchlist file and the allow-list file (its own model here:
``AllowListFile``, validated with the rest at load)."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field, model_validator

from detectors.fence import Allowed, AllowList
from detectors.fence import Zone as DetectorZone
from detectors.timeofday import LocalClock
from streams.config.base import Section, located, unique_ids
from streams.config.cameras import Point
from streams.config.meters import history_from_problem


class FenceZone(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    site_ids: list[str] = Field(min_length=1)
    # Either a lon/lat polygon (outer ring, no holes) or a set of carrier cell ids.
    polygon: list[Point] | list[list[Point]] | None = None
    cells: list[str] | None = None
    active_hours: tuple[int, int] = (0, 24)  # local hours [start, end); (0, 24) = always

    @model_validator(mode="after")
    def _one_shape(self) -> FenceZone:
        if (self.polygon is None) == (self.cells is None):
            raise located((), "a fence zone has either a polygon or cells, not both and not neither")
        if self.polygon is not None:
            problem = DetectorZone.polygon_problem(self.polygon)
            if problem:
                raise located(("polygon",), problem)
        return self

    def zone(self) -> DetectorZone:
        """This zone as the fence rules see it."""
        return DetectorZone(self.id, tuple(self.site_ids), polygon=tuple(map(tuple, self.polygon)) if self.polygon else None,
                            cells=frozenset(self.cells or ()), active_hours=tuple(self.active_hours))


class FencesFile(Section):
    carriers: list[str] = Field(min_length=1)
    # The oldest ping accepted (for back-filling); older pings go to dead-letters.
    history_from: datetime.date = datetime.date(2000, 1, 1)
    zones: list[FenceZone]
    # Key persons and vehicles, as pseudonyms made with the same key (`shaftwatch
    # watchlist hash`): one per line, in a file kept outside the repository.
    watchlist_file: str | None = None
    # Devices allowed in a zone (AllowListFile), relative to the config directory or absolute.
    allowlist_file: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> FencesFile:
        if problem := history_from_problem(self.history_from):
            raise located(("history_from",), problem)
        unique_ids(self.zones, "zones")
        return self


class AllowEntry(Section):
    """One device allowed in one zone: it raises nothing there until ``until`` (included)."""

    zone: str
    # The device's pseudonym, made with the system's key (`shaftwatch watchlist hash`): never a clear id.
    device: str = Field(pattern=r"^p1:[0-9a-f]{32}$")
    role: Literal["resident", "guard", "utility_staff", "patrol", "other"]
    added_by: str = Field(min_length=1)  # who allowed it (name and office)
    why: str = Field(min_length=1)
    until: datetime.date  # the last day it holds (local date); every entry ends

    def allowed(self, clock: LocalClock) -> Allowed:
        day = clock.day_number(clock.epoch(self.until.year, self.until.month, self.until.day, 12))
        return Allowed(self.zone, self.device, self.role, self.added_by, self.why, day)


class AllowListFile(Section):
    """The allow-list file named by fences.yaml's ``allowlist_file``."""

    allowed: list[AllowEntry] = []

    def allow_list(self, clock: LocalClock) -> AllowList:
        return AllowList([e.allowed(clock) for e in self.allowed])
