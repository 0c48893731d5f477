"""Faust tables. Each is backed by a changelog topic and recovered from it on start-up.

feed_activity_*: per source (camera, meter), how many records were accepted and when the
last one was observed. It is how ops staff see a feed go silent, and the state that
survives a worker restart exactly.
"""

from __future__ import annotations

from .app import app, config

_partitions = config.runtime.app.topics.partitions

camera_activity = app.Table("camera-activity", default=None, partitions=_partitions,
                            help="camera id -> {count, first_ts, last_ts, last_seq}")
meter_activity = app.Table("meter-activity", default=None, partitions=_partitions,
                           help="meter id -> {count, first_ts, last_ts}")


def touch(table, key: str, ts: float, **latest) -> dict:
    """Count one accepted record for a source; keep first and latest source time."""
    entry = dict(table.get(key) or {"count": 0, "first_ts": ts, "last_ts": ts})
    entry["count"] += 1
    entry["first_ts"] = min(entry["first_ts"], ts)
    entry["last_ts"] = max(entry["last_ts"], ts)
    entry.update(latest)
    table[key] = entry
    return entry
