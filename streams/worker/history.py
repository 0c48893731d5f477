"""How far back a feed is accepted. The record contract refuses nothing after its floor
(``streams.contract.records.EARLIEST_TS``, 1990-01-01) so that a utility or carrier can
back-fill history; each deployment says from which date it takes history per feed
(``history_from`` in meters.yaml and fences.yaml), and the agents refuse older records to
dead-letters with that reason. Every rule judges a record by its own time (its hour, night,
day type, calendar), so a replay of old data is judged as it was then."""

from __future__ import annotations

import calendar
import datetime

from streams.contract.records import EARLIEST_TS, RecordError


def history_start(day: datetime.date) -> float:
    """UTC epoch seconds of 00:00 UTC on ``day``, never before the contract's floor."""
    return max(EARLIEST_TS, float(calendar.timegm(day.timetuple())))


def check_history(ts: float, earliest: float, where: str) -> None:
    if ts < earliest:
        day = datetime.datetime.fromtimestamp(earliest, datetime.timezone.utc).date()
        raise RecordError(f"ts {ts} is before {day}, the oldest this deployment accepts ({where} history_from)")
