"""`make bench-fusion`: signals/s through the fusion agent (store writes included), and the
time from a signal being produced to its incident update being readable from the store
(p50/p99), on the real broker and the default SQLite store. Not a test."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import time
from pathlib import Path

import sqlalchemy as sa

from alerts.store import AlertStore
from alerts.store.schema import audit
from streams.config import load_config
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from tests.bench.agent_rate import agent_rate, bench_broker
from tests.helpers import WorkerProcess, isolated_config, wait_for, without_cameras

SITES = [f"S0{i}" for i in range(1, 9)]


def make_signal(i: int, ts: float, rng: random.Random) -> dict:
    kind = rng.choice(["vision", "power", "fence"])
    return {"v": 1, "signal_id": hashlib.sha256(f"bench{i}".encode()).hexdigest()[:24], "site_id": rng.choice(SITES),
            "source_kind": kind, "source_id": "bench", "kind": "bench", "ts": ts + i, "strength": rng.uniform(0.1, 0.9),
            "summary": "bench", "details": {"sent_at": 0.0}, "evidence": []}


def messages(n: int, rng: random.Random):
    t0 = time.time() - 86400
    for i in range(n):
        s = make_signal(i, t0, rng)
        yield s["site_id"], json.dumps(s).encode(), partition_for(s["site_id"], 4)


def latency_run(bootstrap: str, run_dir: Path, n: int, rate: float) -> list[float]:
    """Signals at a steady rate into a running worker; latency = audit time - send time."""
    config_dir = isolated_config(run_dir, "bench-fusion-latency", partitions=4, log_level="warning")
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg)))
    worker = WorkerProcess(config_dir, bootstrap, run_dir / "worker.log").start()
    sent: dict[str, float] = {}
    try:
        worker.wait_ready(topic_suffix="signals")

        async def produce():
            rng = random.Random(3)
            t0 = time.time() - 3600
            async with KafkaSink(bootstrap, "bench", linger_ms=0) as sink:
                for i in range(n):
                    s = make_signal(i, t0, rng)
                    sent[s["signal_id"]] = time.time()
                    await sink.send(cfg.topic("signals"), s["site_id"], json.dumps(s).encode(), wait=False)
                    await asyncio.sleep(1 / rate)
                await sink.flush()

        asyncio.run(produce())
        store = AlertStore(cfg.store_url)

        def written():
            with store.engine.connect() as c:
                rows = c.execute(sa.select(audit.c.at, audit.c.detail).where(
                    audit.c.action.in_(["opened", "evidence_added"]))).all()
            return len(rows) >= n and rows
        rows = wait_for(written, 120, what="every signal stored")
        return [row.at - sent[row.detail["signal_id"]] for row in rows if row.detail.get("signal_id") in sent]
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 1000 if args.quick else 5000
    with bench_broker() as (broker, tmp):
        rates = []
        for run in range(1 if args.quick else 3):
            run_dir = Path(tmp) / f"rate{run}"
            config_dir = without_cameras(isolated_config(run_dir, "bench-fusion", partitions=4, log_level="warning"))
            rates.append(agent_rate(broker.bootstrap, config_dir, "signals", list(messages(n, random.Random(run))),
                                    n, run_dir / "worker.log"))
        latencies = latency_run(broker.bootstrap, Path(tmp) / "latency", 200 if args.quick else 600, rate=50)
    q = statistics.quantiles(latencies, n=100)
    print("== fusion on the real broker, SQLite store, one worker ==")
    print(f"throughput (backlog of {n:,} signals): median {statistics.median(rates):,.0f} signals/s  "
          f"runs {[round(r) for r in rates]}")
    print(f"signal produced -> incident readable in the store, at 50 signals/s: "
          f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms over {len(latencies)} signals")


if __name__ == "__main__":
    main()
