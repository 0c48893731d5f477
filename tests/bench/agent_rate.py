"""Records/s through one real worker: pre-produce everything, start the worker, time it
from its first record to its last by polling a counter on its /metrics page."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from streams.config import LocalBrokerSettings, load_config
from streams.kafka.producer import KafkaSink
from streams.ops.local_broker import LocalKafkaBroker, ensure_topics, free_port, topic_plan
from tests.helpers import WorkerProcess, counter, wait_for


@contextlib.contextmanager
def bench_broker():
    """A throw-away local broker for one benchmark: yields it and a scratch directory."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = LocalBrokerSettings(port=free_port(), controller_port=free_port(), heap_mb=768)
        with LocalKafkaBroker(settings, Path(tmp) / "kafka") as broker:
            yield broker, Path(tmp)


def without_cameras(config_dir: Path) -> Path:
    """A worker for meters, fences or signals only: with no camera configured the vision
    agent does not load the object detector, whose seconds of start-up CPU would
    otherwise be counted against the agent being measured."""
    (config_dir / "cameras.yaml").write_text("cameras: []\n")
    return config_dir


def agent_rate(bootstrap: str, config_dir: Path, topic: str, messages, total: int, metric: str,
               log_path: Path, ready_topic: str = "meter-readings", check=None) -> float:
    """``messages``: (key, value, partition) or (key, value, partition, headers) tuples.
    ``check(worker)``, if given, runs once every record is processed (a sanity check)."""
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg)))

    async def produce():
        async with KafkaSink(bootstrap, "bench", linger_ms=20) as sink:
            futures = [await sink.send(cfg.topic(topic), m[0], m[1], partition=m[2],
                                       headers=m[3] if len(m) > 3 else None, wait=False) for m in messages]
            await asyncio.gather(*futures)

    asyncio.run(produce())
    worker = WorkerProcess(config_dir, bootstrap, log_path).start()
    try:
        worker.wait_ready(topic_suffix=ready_topic, timeout=120)
        first = wait_for(lambda: (n := counter(worker, metric)) > 0 and (time.perf_counter(), n), 120,
                         interval=0.05, what="first record")
        deadline = time.monotonic() + 600
        n = first[1]
        while n < total and time.monotonic() < deadline:
            time.sleep(0.1)
            n = counter(worker, metric)
        done = time.perf_counter()
        if n < total:
            raise RuntimeError(f"only {n} of {total} records processed; see {log_path}")
        if check is not None:
            check(worker)
        return (total - first[1]) / (done - first[0])
    finally:
        worker.stop()
