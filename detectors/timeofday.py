"""Local time of day for rules that care about night: pure, from a UTC offset."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=4096)
def _utc_fields(ts: float) -> time.struct_time:
    # The power rules ask for a reading's local date several times, and a county's meters
    # share their interval ends: cached, it is worked out once per interval, not per reading
    # and question (it was a tenth of the rules' time).
    return time.gmtime(ts)


@dataclass(frozen=True)
class LocalClock:
    timezone_offset_h: float = 8.0  # China Standard Time
    night_start_h: int = 20
    night_end_h: int = 6

    def local(self, ts: float) -> time.struct_time:
        return _utc_fields(ts + self.timezone_offset_h * 3600)

    def hour(self, ts: float) -> int:
        return int(self.hour_of_day(ts))

    def hour_of_day(self, ts: float) -> float:
        """Local time of day in hours, with the fraction (01:30 is 1.5)."""
        return ((ts + self.timezone_offset_h * 3600) % 86400) / 3600

    def day_number(self, ts: float) -> int:
        """The local calendar day, as a count of days: equal for two times of the same local day."""
        return int((ts + self.timezone_offset_h * 3600) // 86400)

    def epoch(self, year: int, month: int, day: int, hour: float = 0.0) -> float:
        """UTC epoch seconds of a local date and hour."""
        return calendar.timegm((year, month, day, 0, 0, 0)) + (hour - self.timezone_offset_h) * 3600

    def last(self, local_hour: float, before: float) -> float:
        """The latest time, not after ``before``, whose local time of day is ``local_hour``."""
        shift = local_hour * 3600 - (before + self.timezone_offset_h * 3600) % 86400
        return before + shift - (86400 if shift > 0 else 0)

    def is_night(self, ts: float) -> bool:
        return self.is_night_hour(self.hour(ts))

    def is_night_hour(self, hour: int) -> bool:
        """Is this local hour of the day (0-23) in the night?"""
        if self.night_start_h > self.night_end_h:
            return hour >= self.night_start_h or hour < self.night_end_h
        return self.night_start_h <= hour < self.night_end_h
