"""`make bench-fusion`: signals/s through the fusion agent (store writes included), and the
time from a signal being produced to its incident update being readable from the store
(p50/p99), on the real broker and the default SQLite store; then an incident a site fed for
a month (a camera zone reporting once a minute): the size of its record on ``alerts`` and of
its console page, and the ms to read the ranked list and the page, with what its evidence
saw kept in the incident against read from every signal (as incidents stored before it was
kept are). Not a test."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from alerts.fusion import FusionRules
from alerts.store import AlertStore, published
from alerts.store.schema import audit, incident_signals, incidents
from detectors.timeofday import LocalClock
from streams.contract.decoding import encode
from streams.contract.records import Incident
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


def month_long_incident(tmp: Path, minutes: int) -> None:
    """One incident fed a signal a minute for ``minutes``; its record, page and list."""
    store = AlertStore(f"sqlite:///{tmp / 'month.db'}")
    store.migrate()
    start, rng = 1_790_000_000.0, random.Random(7)
    started = time.perf_counter()
    for first in range(0, minutes, 1000):
        batch = [{"signal_id": hashlib.sha256(f"m{i}".encode()).hexdigest()[:24], "site_id": "S01", "source_kind": "vision", "source_id": "CAM-S01-A",
                  "kind": "vehicle_at_shaft", "ts": start + 60 * i, "strength": 0.5, "summary": "a lorry",
                  "details": {"labels": {"truck": rng.randint(1, 3)}}, "evidence": [f"snapshot:CAM-S01-A/m{i}.jpg"]}
                 for i in range(first, min(minutes, first + 1000))]
        store.incidents.apply_signals(batch, FusionRules(), LocalClock())
    stored_s = time.perf_counter() - started
    (row,) = store.incidents.ranked()
    with store.engine.connect() as c:
        everything = [dict(r._mapping) for r in c.execute(sa.select(incident_signals))] + \
            [dict(r._mapping) for r in c.execute(sa.select(audit))]

    def ms(fn) -> float:
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t) * 1000)
        return statistics.median(runs)

    page = store.incidents.get(row["id"])
    kept = (ms(store.incidents.ranked), ms(lambda: store.incidents.get(row["id"])))
    with store.engine.begin() as c:  # as an incident stored before `seen` was kept in it
        c.execute(sa.update(incidents).values(draft={**row["draft"], "seen": None}))
    read = (ms(store.incidents.ranked), ms(lambda: store.incidents.get(row["id"])))
    print(f"\n== an incident fed a signal a minute for {minutes / 1440:.0f} days ({minutes:,} signals, stored in "
          f"{stored_s:.1f} s; {page['signals_total']:,} in its page's count) ==")
    print(f"its record on alerts: {len(encode(Incident.of(published(row)))):,} bytes (the newest "
          f"{len(row['draft']['signal_ids'])} ids; every id would be {27 * minutes:,})")
    print(f"its console page: {len(json.dumps(page, default=str)):,} bytes ({len(page['signals'])} signals, "
          f"{len(page['audit'])} audit lines); every signal and audit line would be "
          f"{len(json.dumps(everything, default=str)):,}")
    print(f"ranked list / page, median of 5: seen kept in the incident {kept[0]:.1f} / {kept[1]:.1f} ms; "
          f"read from every signal {read[0]:.1f} / {read[1]:.1f} ms")


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
    with tempfile.TemporaryDirectory() as tmp:
        month_long_incident(Path(tmp), 7 * 1440 if args.quick else 30 * 1440)


if __name__ == "__main__":
    main()
