"""fences.yaml: electronic-fence zones (lon/lat polygons or cell ids), the sites each
protects, their hours and the warning text the carriers send there, the watchlist file, the
allow-list file (its own model here: ``AllowListFile``, validated with the rest at load) and
the carriers' CAMARA geofencing endpoints for the watchlist (``shaftwatch fences publish``)."""

from __future__ import annotations

import datetime
from pathlib import Path
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
    # The warning SMS (短信提醒) the carriers send to a phone that enters this zone, as the
    # county plan has them do; handed to them by `shaftwatch fences export`.
    warning_sms: str | None = Field(None, min_length=1, max_length=350)

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


class CamaraEndpoint(Section):
    """One carrier's CAMARA Device Geofencing API (geofencing-subscriptions)."""

    carrier: str
    # The API root up to and including its version, e.g. https://api.example/geofencing-subscriptions/v0.3
    api_root: str = Field(pattern=r"^https?://")
    token_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")  # our access token at the carrier, from the environment


class CamaraSettings(Section):
    """Subscriptions that watch the watchlist's key persons entering and leaving each zone."""

    # Our ingest endpoint as the carriers reach it; each carrier sends there with the token
    # of its own ingest source (shaftwatch.yaml ingest.sources, id = the carrier).
    sink: str = Field(pattern=r"^https?://.*/ingest/fence-pings/camara$")
    subscription_days: float = Field(7.0, gt=0, le=90)  # the expiry asked for
    renew_within_h: float = Field(48.0, gt=0)  # publishing renews what expires within this time
    max_radius_m: int = Field(2000, ge=100, le=200_000)  # larger zones are covered by several circles
    min_radius_m: int = Field(1, ge=1, le=200_000)  # some carriers refuse smaller circles (e.g. 1000 m)
    endpoints: list[CamaraEndpoint] = []

    @model_validator(mode="after")
    def _radii(self) -> CamaraSettings:
        if self.min_radius_m > self.max_radius_m:
            raise located(("min_radius_m",), f"min_radius_m {self.min_radius_m} is above max_radius_m {self.max_radius_m}")
        if self.renew_within_h >= self.subscription_days * 24:
            raise located(("renew_within_h",), "renew_within_h must be shorter than subscription_days, "
                                               "or every publish would renew everything")
        return self


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
    camara: CamaraSettings | None = None

    def read_watchlist(self) -> frozenset[str]:
        """The watchlist's pseudonyms (empty without a watchlist file); lines with # are comments."""
        if not self.watchlist_file:
            return frozenset()
        lines = Path(self.watchlist_file).read_text(encoding="utf-8").splitlines()
        return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))

    @model_validator(mode="after")
    def _unique_ids(self) -> FencesFile:
        if problem := history_from_problem(self.history_from):
            raise located(("history_from",), problem)
        unique_ids(self.zones, "zones")
        for i, endpoint in enumerate(self.camara.endpoints if self.camara else []):
            if endpoint.carrier not in self.carriers:
                raise located(("camara", "endpoints", i, "carrier"),
                              f"carrier {endpoint.carrier!r} is not in carriers {self.carriers}")
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
