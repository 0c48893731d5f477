"""What agents take in: malformed records to dead-letters with their bytes and reason, and the agent goes on; a batch on the wrong partition refused."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta
from streams.contract.records import DeadLetter
from streams.kafka.producer import KafkaSink
from tests.helpers import meter_reading, produce, read_all, wait_for

pytestmark = pytest.mark.broker


def test_malformed_records_go_to_dead_letters_and_the_agent_goes_on(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    worker = start()
    now = time.time()
    bad_readings = [
        (b"M-0001", b"{not json", "not JSON"),
        (b"M-0001", b"", "empty message"),
        (b"M-0001", meter_reading("M-0001", now, kwh=-4.0), "energy_kwh is negative"),
        (b"M-9999", meter_reading("M-9999", now), "unknown meter 'M-9999'"),
    ]
    good = (b"M-0004", meter_reading("M-0004", now - 900), None)
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"),
                        [(k, v, None) for k, v, _ in bad_readings] + [good]))
    meta = FrameMeta("CAM-S01-A", "S01", now, 1)
    bad_frames = [
        (b"CAM-S01-A", b"", meta.headers(), "zero bytes"),
        (b"CAM-S01-A", b"\xff\xd8\xff\xe0 jpeg", [h for h in meta.headers() if h[0] != "site_id"],
         "frame headers missing: site_id"),
        (b"CAM-X", b"\xff\xd8\xff\xe0 jpeg", FrameMeta("CAM-X", "S01", now, 1).headers(), "unknown camera 'CAM-X'"),
        (b"CAM-S01-A", b"GIF89a....", meta.headers(), "not a JPEG"),
    ]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("frames"), [(k, v, h) for k, v, h, _ in bad_frames]))

    letters = asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=8, timeout=60))
    decoded = [decode(DeadLetter, r.value) for r in letters]
    assert len(decoded) == 8
    for (key, value, reason) in bad_readings:
        match = [d for d in decoded if d.topic == cfg.topic("meter-readings") and d.original_value() == value]
        assert match and reason in match[0].reason and match[0].source == "power-agent"
    for (key, value, headers, reason) in bad_frames:
        match = [d for d in decoded if d.topic == cfg.topic("frames") and reason in d.reason]
        assert match and match[0].original_value() == value and match[0].source == "vision-agent"
    # The agent carried on: the good reading behind the bad ones was processed.
    assert wait_for(lambda: worker.get("/feeds/meters").get("M-0004", {}).get("count") == 1, 30,
                    what="good reading after bad ones")
    metrics = __import__("urllib.request").request.urlopen(worker.url("/metrics")).read().decode()
    assert 'shaftwatch_dead_letters_total{source="power-agent",topic="' + cfg.topic("meter-readings") + '"} 4.0' in metrics


def test_a_batch_on_the_wrong_partition_is_refused(kafka_bootstrap, worker_env):
    from streams.contract.partitioning import partition_for
    cfg, start = worker_env
    worker = start()
    home = partition_for("M-0002", 2)
    batch = json.dumps({"v": 1, "source_id": "u", "readings": [{"meter_id": "M-0002", "ts": time.time() - 900,
                                                                 "power_kw": 1.0}]}).encode()

    async def send_elsewhere():
        async with KafkaSink(kafka_bootstrap, "test") as sink:
            await sink.send(cfg.topic("meter-readings"), b"M-0002", batch, partition=1 - home)

    asyncio.run(send_elsewhere())
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=1, timeout=30))]
    assert len(letters) == 1 and f"meter M-0002 belongs to partition {home}, not {1 - home}" in letters[0].reason
    assert "M-0002" not in worker.get("/feeds/meters")
