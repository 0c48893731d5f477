"""The power agent on the real broker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from streams.contract.decoding import decode
from streams.contract.records import DeadLetter
from tests.helpers import produce, read_all

pytestmark = pytest.mark.broker


def test_reconnection_becomes_a_signal_once_even_when_resent(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    start()
    t0 = time.time() - 20 * 900
    t0 -= t0 % 900
    quiet = [{"meter_id": "M-0001", "ts": t0 + i * 900, "power_kw": 0.0} for i in range(8)]
    theft = [{"meter_id": "M-0001", "ts": t0 + (8 + i) * 900, "power_kw": 31.5} for i in range(2)]
    bad_row = {"meter_id": "M-0001", "ts": t0 + 10 * 900, "power_kw": -3.0}
    batch = json.dumps({"v": 1, "source_id": "utility-test", "readings": quiet + theft + [bad_row]}).encode()
    # The same batch twice: a utility re-sending after a timeout.
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), [(b"M-0001", batch, None)] * 2))
    signals = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=2, timeout=30))
    from streams.contract.records import Signal
    decoded = [decode(Signal, r.value) for r in signals]
    assert [s.kind for s in decoded] == ["reconnection"], decoded
    (signal,) = decoded
    assert signals[0].key == b"S01" and signal.site_id == "S01" and signal.source_id == "M-0001"
    assert signal.ts == t0 + 8 * 900 and signal.details["kw"] == 31.5
    assert "cut" in signal.summary
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=2, timeout=10))]
    assert [d.reason for d in letters] == ["reading 10: power_kw is negative (-3.0)"] * 2
