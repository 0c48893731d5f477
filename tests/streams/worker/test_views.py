"""The worker's own pages on a real worker: /health says when Kafka is unreachable (tested
under `shaftwatch run` in tests/streams/ops/test_supervisor.py), /metrics exports each held
partition's consumer lag."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from tests.helpers import WorkerProcess, isolated_config, meter_reading, wait_for, without_cameras


def lag(worker: WorkerProcess, topic: str) -> dict[int, float]:
    text = urllib.request.urlopen(worker.url("/metrics"), timeout=5).read().decode()
    pattern = r'^shaftwatch_consumer_lag_records\{partition="(\d+)",topic="' + re.escape(topic) + r'"\} ([0-9.e+]+)$'
    return {int(p): float(v) for p, v in re.findall(pattern, text, re.M)}


def test_consumer_lag_is_exported_per_held_partition(kafka_bootstrap, tmp_path):
    """A backlog produced before the worker starts shows as lag on its partitions, and the
    lag falls to 0 once the worker has processed and committed it."""
    config_dir = without_cameras(isolated_config(tmp_path, "lag"))
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    topic = cfg.topic("meter-readings")
    meters = [m.id for m in cfg.meters.meters]
    t0 = 1_790_000_000.0
    backlog = [(m.encode(), meter_reading(m, t0 + 900 * i), None) for i in range(150) for m in meters]

    async def send() -> None:
        async with KafkaSink(kafka_bootstrap, "test", linger_ms=20) as sink:
            await asyncio.gather(*[await sink.send(topic, k, v, wait=False) for k, v, _ in backlog])
    asyncio.run(send())
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        seen = wait_for(lambda: (v := lag(worker, topic)) and max(v.values()) > 0 and v, 120, interval=0.2,
                        what="lag while the backlog is processed")
        assert set(seen) <= {0, 1} and sum(seen.values()) <= len(backlog)
        worker.wait_ready()
        settled = wait_for(lambda: (v := lag(worker, topic)) and len(v) == 2 and sum(v.values()) == 0 and v, 120,
                           what="lag back to 0 on both partitions")
        assert settled == {0: 0.0, 1: 0.0}
    finally:
        worker.stop()
