"""The fusion agent on the real broker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from alerts.store import AlertStore
from streams.contract.decoding import decode
from streams.contract.records import Incident
from tests.helpers import all_incidents, count_signals, produce, read_all, wait_for

pytestmark = pytest.mark.broker


def test_a_burst_of_signals_publishes_its_incident_once_per_batch(kafka_bootstrap, worker_env):
    """The fusion agent stores a burst of signals in micro-batches and publishes each
    incident once per batch, as it stands after the batch: fewer alerts records than
    signals, the last one holding every signal."""
    cfg, start = worker_env
    night = (time.time() // 86400) * 86400 - 86400 + 19 * 3600  # 03:00 the night before, local (UTC+8)
    burst = [(b"S01", json.dumps({"v": 1, "signal_id": f"burst-{i:02d}", "site_id": "S01", "source_kind": "fence",
                                  "source_id": "FZ-JS-1", "kind": "zone_entry", "ts": night + i * 10,
                                  "strength": 0.5, "summary": f"entry {i}"}).encode(), None) for i in range(40)]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("signals"), burst))  # all waiting before the worker starts
    start()
    store = AlertStore(cfg.store_url)
    wait_for(lambda: count_signals(store) == 40, 60, what="40 signals stored")
    [incident] = all_incidents(store)
    # Asking for one record more than there are signals reads everything there is, until the timeout.
    records = [decode(Incident, r.value) for r in asyncio.run(read_all(kafka_bootstrap, cfg.topic("alerts"), 41,
                                                                       timeout=5))]
    assert {r.incident_id for r in records} == {incident["id"]}
    assert 1 <= len(records) < 40
    assert records[-1].signal_ids == [f"burst-{i:02d}" for i in range(40)] == incident["draft"]["signal_ids"]
