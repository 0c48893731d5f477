"""Faust tables. Each is backed by a changelog topic and recovered from it on start-up.

camera-activity: per camera, how many frames were accepted and when the last was captured
(how ops staff see a feed go silent).
meter-state: per meter, everything the power rules remember (detectors.power.new_state)
under the meter id, and its baseline profile under "meter id/bucket", one key per bucket.
One table, so that a message's changes to a meter — its rule state and the buckets it
learnt — reach the changelog in one record batch, written whole or not at all: a worker
killed mid-write cannot leave the buckets ahead of the state (the replay would learn a
reading twice) or behind it.
device-state, zone-state: what the fence rules remember per device and per zone.
Detector state survives a restart exactly: the worker rebuilds it from the changelogs.
"""

from __future__ import annotations

from detectors.power import BUCKETS
from streams.worker.app import PARTITIONS, app
from streams.worker.changelog import BatchedChangelogTable


def _state_table(name: str, help: str):
    # app.Table would register the table (and make its changelog topic and store with the
    # JSON codec) before our codec is set; build it, then register it. The agent writing
    # one changes it inside table.changing(); each offset commit writes the changes
    # (streams.worker.changelog).
    table = BatchedChangelogTable(app, name=name, default=None, beacon=app.tables.beacon, partitions=PARTITIONS, help=help)
    return app.tables.add(table)


# Written by the vision agent from micro-batches that can span partitions: the changelog
# partition comes from the key (camera id), as the frames topic itself is partitioned.
camera_activity = app.Table("camera-activity", default=None, partitions=PARTITIONS, use_partitioner=True,
                            help="camera id -> {count, first_ts, last_ts, last_seq}")
meter_state = _state_table("meter-state",
                           help="meter id -> detectors.power state without its baseline (runs, last reading); "
                                "'meter id/bucket' -> that meter's baseline bucket")
device_state = _state_table("device-state",
                            help="device pseudonym -> detectors.fence device state (open visits, days seen)")
zone_state = _state_table("zone-state",
                          help="fence zone id -> detectors.fence zone state (devices present, crew)")


def meter_states() -> dict:
    """meter id -> rule state, leaving out the baseline buckets kept in the same table."""
    return {key: value for key, value in meter_state.items() if "/" not in key}


class BaselineBuckets:
    """One meter's baseline profile as the ``state["buckets"]`` mapping the power rules use,
    each bucket kept under its own key "meter id/bucket" in ``meter-state``. A reading changes one
    bucket: its changelog record is a few hundred bytes, where the meter's whole profile
    (72 buckets x 16 readings) would be 12 kB for every reading."""

    def __init__(self, meter_id: str):
        self.prefix = f"{meter_id}/"

    def get(self, bucket: str, default=None):
        return meter_state.peek(self.prefix + bucket, default)

    def __setitem__(self, bucket: str, samples: list[float]) -> None:
        meter_state[self.prefix + bucket] = samples

    def as_dict(self) -> dict[str, list[float]]:
        return {b: v for b in BUCKETS if (v := self.get(b)) is not None}


def touch(table, key: str, ts: float, **latest) -> dict:
    """Count one accepted record for a source; keep first and latest source time."""
    entry = dict(table.get(key) or {"count": 0, "first_ts": ts, "last_ts": ts})
    entry["count"] += 1
    entry["first_ts"] = min(entry["first_ts"], ts)
    entry["last_ts"] = max(entry["last_ts"], ts)
    entry.update(latest)
    table[key] = entry
    return entry
