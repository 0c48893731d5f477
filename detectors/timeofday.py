"""Local time of day for rules that care about night: pure, from a UTC offset."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalClock:
    timezone_offset_h: float = 8.0  # China Standard Time
    night_start_h: int = 20
    night_end_h: int = 6

    def local(self, ts: float) -> time.struct_time:
        return time.gmtime(ts + self.timezone_offset_h * 3600)

    def hour(self, ts: float) -> int:
        return self.local(ts).tm_hour

    def is_night(self, ts: float) -> bool:
        hour = self.hour(ts)
        if self.night_start_h > self.night_end_h:
            return hour >= self.night_start_h or hour < self.night_end_h
        return self.night_start_h <= hour < self.night_end_h
