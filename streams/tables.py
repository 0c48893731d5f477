"""Faust tables. Each is backed by a changelog topic and recovered from it on start-up.

camera_activity: per camera, how many frames were accepted and when the last was captured.
meter_state: per meter, everything the power rules remember (detectors.power.new_state).
Both are how ops staff see a feed go silent, and the state that survives a restart exactly.
"""

from __future__ import annotations

from faust.serializers import codecs

from .app import app, config
from .changelog import BatchedChangelogTable

_partitions = config.runtime.app.topics.partitions

# Detector state is written on every record, so its changelog codec is on the hot path:
# restricted pickle writes a warm meter's state in ~14 us against ~113 us for JSON, and
# without Faust's base64 layer (the changelog is binary) it costs less again. It is
# internal state written only by these agents, and the restricted unpickler refuses
# anything but plain builtins on recovery.
STATE_CODEC = "shaftwatch-state"
codecs.register(STATE_CODEC, codecs.restricted_pickle())


def _state_table(name: str, help: str):
    # app.Table would register the table (and make its changelog topic and store with the
    # JSON codec) before a codec could be set; build it, set the codec, then register it.
    # Agents writing these call flush_changelog() once per message (streams.changelog).
    table = BatchedChangelogTable(app, name=name, default=None, beacon=app.tables.beacon, partitions=_partitions, help=help)
    table.value_serializer = STATE_CODEC
    return app.tables.add(table)

# Written by the vision agent from micro-batches that can span partitions: the changelog
# partition comes from the key (camera id), as the frames topic itself is partitioned.
camera_activity = app.Table("camera-activity", default=None, partitions=_partitions, use_partitioner=True,
                            help="camera id -> {count, first_ts, last_ts, last_seq}")
meter_state = _state_table("meter-state",
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
device_state = _state_table("device-state",
                            help="device pseudonym -> detectors.fence device state (open visits, days seen)")
zone_state = _state_table("zone-state",
                          help="fence zone id -> detectors.fence zone state (devices present, crew)")
