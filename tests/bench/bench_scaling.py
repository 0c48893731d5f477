"""Scaling: power and fence throughput through 1, 2 and 3 workers on the local three-node
Kafka cluster (replication 3, min.insync.replicas 2, 12 partitions).

For each worker count the workers are started first and the consumer group left to settle
(every partition of the topic held, nobody rebalancing), then the backlog is produced and
timed by the workers' own clocks: from the first item any worker took to the last item any
worker finished. Per-worker efficiency is rate(n) / (n x rate(1)).

On a 2-core machine the three Kafka nodes, the producer and the workers share two cores, so
the figures say what a second core buys, not what a county server would see; the sizing
guide in deploy/README.md is built from them with that said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from streams.config import LocalBrokerSettings, load_config
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from streams.ops.local_broker import LocalKafkaCluster
from tests.bench.bench_fence import county_pings
from tests.bench.bench_power import _messages, county_meters
from tests.helpers import WorkerProcess, counter, free_port, isolated_config, wait_for, without_cameras

PARTITIONS = 12


def settled(workers: list[WorkerProcess], topic: str) -> bool:
    """Every partition of the topic held by exactly one worker, each worker holding some."""
    held = []
    for worker in workers:
        health = worker.get("/health")
        if health["rebalancing"]:
            return False
        mine = [p for p in health["active_partitions"] if p.rsplit(":", 1)[0] == topic]
        if not mine:
            return False
        held += mine
    return len(held) == len(set(held)) == PARTITIONS


def rate(bootstrap: str, workdir: Path, workers_n: int, feed: str, messages: list, total: int,
         meters: list[dict] | None) -> float:
    name = f"scale-{feed}-{workers_n}-{int(time.time())}"
    config_dir = without_cameras(isolated_config(workdir / name, name, partitions=PARTITIONS,
                                                 app={"topics": {"replication": 3}}))
    if meters is not None:
        (config_dir / "meters.yaml").write_text(yaml.safe_dump({"utility": "bench", "meters": meters}))
    cfg = load_config(config_dir)
    topic = cfg.topic(feed)
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg)))
    workers = [WorkerProcess(config_dir, bootstrap, workdir / name / f"worker-{i}.log", port=free_port()).start()
               for i in range(workers_n)]
    try:
        for worker in workers:
            worker.wait_ready(topic_suffix=feed, timeout=180)
        wait_for(lambda: settled(workers, topic), 180, interval=1, what=f"{workers_n} workers settled on {topic}")
        time.sleep(3)  # and staying so

        async def produce():
            async with KafkaSink(bootstrap, "bench", linger_ms=20) as sink:
                futures = [await sink.send(topic, m[0], m[1], partition=m[2], wait=False) for m in messages]
                await asyncio.gather(*futures)

        asyncio.run(produce())
        accepted = f'shaftwatch_records_accepted_total{{topic="{feed}"}}'  # metrics name the topic, unprefixed
        done = wait_for(lambda: (n := sum(counter(w, accepted) for w in workers)) >= total and n, 900, interval=0.5,
                        what=f"{total} items accepted by {workers_n} workers")
        if done > total:
            print(f"    note: {done - total:.0f} items processed twice (redelivered after a rebalance)")
        starts = [counter(w, f'shaftwatch_records_in_created{{topic="{feed}"}}') for w in workers]
        ends = [counter(w, f'shaftwatch_records_last_accepted_timestamp_seconds{{topic="{feed}"}}') for w in workers]
        busy = [round(e - s, 1) for s, e in zip(starts, ends) if s]
        print(f"    {workers_n} worker(s): each busy {busy} s")
        return done / (max(ends) - min(s for s in starts if s))
    finally:
        for worker in workers:
            worker.stop()


def power_backlog(meters: int, intervals: int) -> tuple[list, int, list[dict]]:
    rows = county_meters(meters)
    return list(_messages(rows, intervals, True, PARTITIONS, random.Random(2))), meters * intervals, rows


def fence_backlog(pings: int) -> tuple[list, int]:
    groups: dict[int, list] = {}
    for p in county_pings(pings, devices=5000, seed=1):
        groups.setdefault(partition_for(p["device_pid"], PARTITIONS), []).append(p)
    messages = []
    for part, group in groups.items():
        for k in range(0, len(group), 500):
            rows = [{f: v for f, v in p.items() if f not in ("v", "source_id")} for p in group[k:k + 500]]
            messages.append((rows[0]["device_pid"], json.dumps({"v": 1, "source_id": "CMCC", "pings": rows}).encode(),
                             part))
    return messages, pings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller backlogs, one run each")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    repeats = 1 if args.quick else 2
    power = power_backlog(1000 if args.quick else 2000, 24 if args.quick else 48)
    fence = fence_backlog(40_000 if args.quick else 100_000)
    print(f"== scaling on a local three-node cluster, {PARTITIONS} partitions, this machine: "
          f"{os.cpu_count()} cores ==")
    print(f"power: {power[1]:,} readings of {len(power[2]):,} meters (500 a message); "
          f"fence: {fence[1]:,} pings of 5,000 devices (500 a message)")
    results: dict[str, dict[int, list[float]]] = {"power": {}, "fence": {}}
    with tempfile.TemporaryDirectory() as tmp:
        settings = LocalBrokerSettings(heap_mb=512)
        ports = [(free_port(), free_port()) for _ in range(3)]
        with LocalKafkaCluster(settings, Path(tmp) / "cluster", 3, ports) as cluster:
            for _ in range(repeats):  # interleaved: the machine's noise spreads over every count
                for n in args.workers:
                    results["power"].setdefault(n, []).append(
                        rate(cluster.bootstrap, Path(tmp), n, "meter-readings", power[0], power[1], power[2]))
                    results["fence"].setdefault(n, []).append(
                        rate(cluster.bootstrap, Path(tmp), n, "fence-pings", fence[0], fence[1], None))
    for feed, unit in (("power", "readings/s"), ("fence", "pings/s")):
        one = statistics.median(results[feed][args.workers[0]]) * args.workers[0] if args.workers[0] == 1 else None
        print(f"\n{feed} ({unit}, median of {repeats}):")
        for n, runs in results[feed].items():
            median = statistics.median(runs)
            line = f"  {n} worker(s): {median:>10,.0f}  runs {[round(r) for r in runs]}"
            if one:
                line += f"  x{median / one:.2f} of one worker, per-worker efficiency {median / (n * one):.0%}"
            print(line)


if __name__ == "__main__":
    main()
