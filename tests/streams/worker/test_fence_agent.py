"""The fence and zone agents on the real broker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from detectors.timeofday import LocalClock
from streams.contract.decoding import decode
from tests.helpers import produce, read_all

pytestmark = pytest.mark.broker


def test_fence_crew_becomes_signals_and_device_state_survives_restart(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    from streams.contract.records import Signal
    worker = start()
    night = LocalClock().last(2.0, time.time() - 3600)  # 02:00 local, today or yesterday

    def ping(pid, ts, kind="phone"):
        return (pid.encode(), json.dumps({"v": 1, "source_id": "CMCC", "device_pid": pid, "device_kind": kind,
                                          "ts": ts, "lon": 110.4128, "lat": 34.4310, "accuracy_m": 60}).encode(), None)

    crew = [f"p1:crew{i}" for i in range(3)]
    pings = [ping(pid, night + k * 200 + i) for k in range(3) for i, pid in enumerate(crew)]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), pings))
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=4, timeout=60))
    signals = [decode(Signal, r.value) for r in records]
    assert sorted(s.kind for s in signals) == ["crew_in_zone", "zone_entry", "zone_entry", "zone_entry"]
    assert all(s.site_id == "S01" and s.source_kind == "fence" and s.source_id == "FZ-JS-1" for s in signals)
    crew_signal = next(s for s in signals if s.kind == "crew_in_zone")
    assert sorted(crew_signal.details["device_pids"]) == crew and crew_signal.details["devices"] == 3 and crew_signal.details["night"] is True

    worker.stop()
    start()
    # The same devices ping on: they were already counted, so no new entry after the restart.
    asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), [ping(pid, night + 700) for pid in crew]))
    time.sleep(5)
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=5, timeout=10))
    assert len(records) == 4, [decode(Signal, r.value).kind for r in records]
