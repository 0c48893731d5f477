"""Records/s through one real worker: pre-produce everything, start the worker, time it
from its first record to its last by polling a counter on its /metrics page."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import urllib.request
from pathlib import Path

from streams.config import LocalBrokerSettings, load_config
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from streams.ops.local_broker import LocalKafkaBroker
from tests.helpers import WorkerProcess, counter, free_port, metric_sample, wait_for


@contextlib.contextmanager
def bench_broker():
    """A throw-away local broker for one benchmark: yields it and a scratch directory."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = LocalBrokerSettings(port=free_port(), controller_port=free_port(), heap_mb=768)
        with LocalKafkaBroker(settings, Path(tmp) / "kafka") as broker:
            yield broker, Path(tmp)


LAG_BUCKETS = ("0.01", "0.025", "0.05", "0.1")


def loop_lag_probes(worker) -> dict[str, float]:
    """The worker's event-loop probes so far (streams.worker.loop_probe), from one read of
    its /metrics page (the probe runs every 50 ms, so several reads would not add up): how
    many, how many woke later than each bucket bound, and the longest lag of the last
    minute."""
    text = urllib.request.urlopen(worker.url("/metrics"), timeout=30).read().decode()
    total = metric_sample(text, "shaftwatch_event_loop_lag_seconds_count")
    full_gc = metric_sample(text, 'shaftwatch_gc_pause_seconds_count{generation="2"}')
    slow_gc = full_gc - metric_sample(text, 'shaftwatch_gc_pause_seconds_bucket{generation="2",le="0.1"}')
    late = {le: total - metric_sample(text, f'shaftwatch_event_loop_lag_seconds_bucket{{le="{le}"}}')
            for le in LAG_BUCKETS}
    return {"probes": total, "max_s": metric_sample(text, "shaftwatch_event_loop_lag_max_seconds"),
            "full_gc": full_gc, "full_gc_over_0.1": slow_gc, **late}


def agent_rate(bootstrap: str, config_dir: Path, topic: str, messages, total: int, log_path: Path,
               ready_topic: str = "meter-readings", check=None, loop_lag: dict | None = None) -> float:
    """Items (readings, pings, frames, signals) per second through the agent that reads
    ``topic``, from a backlog of ``messages`` produced before the worker starts.

    Timed by the worker's own clock, from when it took the first item of the backlog
    (``shaftwatch_records_in_total``'s created time) to when it had finished the last
    (``shaftwatch_records_last_accepted_timestamp_seconds``), so the figure holds however
    small the backlog: polling from outside saw nothing of a backlog done in one poll.
    ``messages``: (key, value, partition) or (key, value, partition, headers) tuples.
    ``check(worker)``, if given, runs once every item is processed (a sanity check).
    ``loop_lag``, if given, is filled with how the worker's event loop was held meanwhile:
    the longest stall (s), the share of its probes (every 50 ms) that woke more than
    10/25/50/100 ms late, and its full (generation 2) garbage collections and how many
    took over 100 ms, counted from when the worker was ready."""
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
        at_ready = loop_lag_probes(worker) if loop_lag is not None else None
        accepted = f'shaftwatch_records_accepted_total{{topic="{topic}"}}'
        n = wait_for(lambda: (n := counter(worker, accepted)) >= total and n, 600, interval=0.1,
                     what=f"{total} items accepted ({log_path})")
        if n > total:
            # At least once: a rebalance on a loaded machine hands a partition back from its
            # last commit, and those items are processed again. The rate counts the work done.
            print(f"    note: {n - total:.0f} of {total} items processed twice (redelivered after a rebalance)")
        if check is not None:
            check(worker)
        if loop_lag is not None:
            done = loop_lag_probes(worker)
            probes = max(1.0, done["probes"] - at_ready["probes"])
            loop_lag.update({"max_s": done["max_s"], "probes": probes,
                             **{k: done[k] - at_ready[k] for k in ("full_gc", "full_gc_over_0.1")},
                             **{f"late_{le}": (done[le] - at_ready[le]) / probes for le in LAG_BUCKETS}})
        started = counter(worker, f'shaftwatch_records_in_created{{topic="{topic}"}}')
        finished = counter(worker, f'shaftwatch_records_last_accepted_timestamp_seconds{{topic="{topic}"}}')
        return n / (finished - started)
    finally:
        worker.stop()
