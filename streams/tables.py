"""Faust tables. Each is backed by a changelog topic and recovered from it on start-up.

camera_activity: per camera, how many frames were accepted and when the last was captured.
meter_state: per meter, everything the power rules remember (detectors.power.new_state).
Both are how ops staff see a feed go silent, and the state that survives a restart exactly.
"""

from __future__ import annotations

from .app import app, config

_partitions = config.runtime.app.topics.partitions

camera_activity = app.Table("camera-activity", default=None, partitions=_partitions,
                            help="camera id -> {count, first_ts, last_ts, last_seq}")
meter_state = app.Table("meter-state", default=None, partitions=_partitions,
                        help="meter id -> detectors.power state (baselines, runs, last reading)")


def touch(table, key: str, ts: float, **latest) -> dict:
    """Count one accepted record for a source; keep first and latest source time."""
    entry = dict(table.get(key) or {"count": 0, "first_ts": ts, "last_ts": ts})
    entry["count"] += 1
    entry["first_ts"] = min(entry["first_ts"], ts)
    entry["last_ts"] = max(entry["last_ts"], ts)
    entry.update(latest)
    table[key] = entry
    return entry
device_state = app.Table("device-state", default=None, partitions=_partitions,
                         help="device pseudonym -> detectors.fence device state (open visits, days seen)")
zone_state = app.Table("zone-state", default=None, partitions=_partitions,
                       help="fence zone id -> detectors.fence zone state (devices present, crew)")
