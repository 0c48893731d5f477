"""thresholds.yaml: time zone, night hours, the detection and fusion thresholds, and the
night profile merged over them during the night hours. The detectors' own parameter
classes are the models of their sections, so a threshold is defined once, next to the
rule that uses it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from alerts.fusion import FusionRules
from detectors.camera import VisionRules
from detectors.fence import FenceRules
from detectors.power import PowerRules
from detectors.timeofday import LocalClock
from streams.config.base import Section, located
from streams.config.errors import explained


class NightHours(Section):
    start: int = Field(20, ge=0, le=23)
    end: int = Field(6, ge=0, le=23)


class ThresholdsFile(Section):
    timezone_offset_h: float = Field(8.0, ge=-12, le=14)  # China Standard Time
    night: NightHours = NightHours()
    # The detectors' own parameter classes are the config models of their sections, so a
    # threshold is defined once, next to the rule that uses it.
    power: PowerRules = PowerRules()
    fence: FenceRules = FenceRules()
    fusion: FusionRules = FusionRules()
    vision: VisionRules = VisionRules()
    # What changes for the night hours (``night``, local time): keys of the sections above,
    # only those that differ, e.g. a lower person score for infrared pictures. At night the
    # rules in force are the sections above with these merged in (``at_night``).
    night_profile: dict[str, dict[str, Any]] = {}

    _clock: LocalClock = PrivateAttr()
    _at_night: ThresholdsFile | None = PrivateAttr(None)  # None: no night profile, the same by night

    @model_validator(mode="after")
    def _night_profile_merges(self) -> ThresholdsFile:
        self._clock = LocalClock(self.timezone_offset_h, self.night.start, self.night.end)
        if self.night_profile:
            unknown = set(self.night_profile) - set(PROFILE_SECTIONS)
            if unknown:
                raise located(("night_profile", sorted(unknown)[0]),
                               f"a profile changes only {', '.join(PROFILE_SECTIONS)}")
            merged = self.model_dump(exclude={"night_profile"})
            for section, changes in self.night_profile.items():
                merged[section] = _merge(merged[section], changes)
            try:
                self._at_night = ThresholdsFile.model_validate(merged)
            except ValidationError as exc:
                loc, message = explained(exc.errors()[0])
                raise located(("night_profile",) + loc, message) from None
        return self

    def clock(self) -> LocalClock:
        return self._clock

    def at_night(self) -> ThresholdsFile:
        """These thresholds with the night profile merged in (the same when there is none)."""
        return self._at_night if self._at_night is not None else self


PROFILE_SECTIONS = ("power", "fence", "fusion", "vision")


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, nested mappings key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
