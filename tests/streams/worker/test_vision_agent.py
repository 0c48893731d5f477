"""The vision agent on the real broker, with real footage."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta
from streams.contract.records import DeadLetter
from tests.helpers import produce, read_all

pytestmark = pytest.mark.broker


def test_frames_become_a_vision_signal_with_a_snapshot(kafka_bootstrap, worker_env):

    import cv2

    from alerts.evidence import EvidenceStore
    from streams.contract.records import Signal
    from tests.helpers import PEOPLE, jpegs
    if not PEOPLE.exists():
        pytest.skip(f"real footage not found at {PEOPLE}")
    cfg, start = worker_env
    start()
    t0 = time.time() - 600
    frames = jpegs(PEOPLE, [0] * 3 + list(range(240, 320, 10)))
    batch = [(b"CAM-S01-A", jpeg, FrameMeta("CAM-S01-A", "S01", t0 + k, k + 1).headers())
             for k, jpeg in enumerate(frames)]
    truncated = (b"CAM-S01-A", frames[0][:300], FrameMeta("CAM-S01-A", "S01", t0 + 99, 99).headers())
    asyncio.run(produce(kafka_bootstrap, cfg.topic("frames"), batch + [truncated]))
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=1, timeout=90))
    (signal,) = [decode(Signal, r.value) for r in records]
    assert (signal.site_id, signal.source_kind, signal.kind) == ("S01", "vision", "person_at_shaft")
    assert signal.details["labels"] == {"person": 1}
    snapshot = EvidenceStore(cfg.evidence_dir).path_of(signal.evidence[0])
    assert snapshot is not None and cv2.imread(str(snapshot)).shape == (432, 768, 3)
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=1, timeout=30))]
    assert [d.source for d in letters] == ["vision-agent"] and "corrupt frame" in letters[0].reason
    assert letters[0].original_value() == frames[0][:300]
