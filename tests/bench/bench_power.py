"""`make bench-power`: quality of the power rules, and readings/s through the rules alone and
through the power agent on a real broker, batched per message vs one reading per message.

Not a test: it prints figures. The machine is small and noisy, so each throughput figure
is the median of several runs, and the comparison is given as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from aiokafka.admin import NewTopic

from detectors.power import MeterSpec, PowerRules, new_state, observe
from detectors.timeofday import LocalClock
from streams.config import Meter, load_config
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics
from streams.kafka.producer import KafkaSink
from streams.worker.changelog import encode_entry
from tests.bench.agent_rate import LAG_BUCKETS, agent_rate, bench_broker
from tests.bench.power_quality import main as quality_main
from tests.bench.power_quality import print_report
from tests.bench.power_real import main as real_main
from tests.bench.power_yardstick import main as yardstick_main
from tests.bench.real_data import DataMissing
from tests.helpers import http_json, isolated_config, without_cameras

T0 = (time.time() // 900) * 900 - 30 * 86400


def county_meters(n: int) -> list[dict]:
    """A bench county: n meters in the demo mix (as meters.yaml rows)."""
    rows = []
    for i in range(n):
        site = f"S0{i % 8 + 1}"
        if i % 10 < 2:
            rows.append({"id": f"B-{i:06d}", "site_id": site, "kind": "mine_supply", "expected_zero": True, "rated_kw": 250})
        elif i % 10 < 7:
            rows.append({"id": f"B-{i:06d}", "site_id": site, "kind": "irrigation", "rated_kw": 22,
                         "irrigation": {"months": [4, 5, 6, 7, 8], "hours": [6, 20], "pump_kw": 15}})
        else:
            rows.append({"id": f"B-{i:06d}", "site_id": site, "kind": "village", "rated_kw": 160})
    return rows


def reading_kw(row: dict, ts: float, rng: random.Random) -> float:
    if row.get("expected_zero"):
        return 0.0
    if row["kind"] == "irrigation":
        return round(rng.uniform(0, 0.08), 3)
    return round(row["rated_kw"] * rng.uniform(0.15, 0.35), 2)


# --------------------------------------------------------------------------- rules alone


def meter_spec(row: dict) -> MeterSpec:
    """A meters.yaml row as the power rules see it, through the config's own model."""
    return Meter.model_validate(row).spec()


def warm_states(rows: list[dict], days: int, rng: random.Random) -> dict[str, dict]:
    """Rule state of every meter after ``days`` of readings ending at T0: baselines warm,
    as a running county's are."""
    rules, clock = PowerRules(), LocalClock()
    specs = [meter_spec(r) for r in rows]
    states = {r["id"]: new_state() for r in rows}
    for i in range(days * 96):
        ts = T0 - days * 86400 + i * 900
        for row, spec in zip(rows, specs):
            observe(spec, rules, clock, states[row["id"]], ts, power_kw=reading_kw(row, ts, rng))
    return states


def bench_rules(meters: int, intervals: int, repeats: int, warm_days: int = 14) -> float:
    """Readings/s through observe() on meters whose baselines are warm (steady state)."""
    rng = random.Random(1)
    rows = county_meters(meters)
    specs = [meter_spec(r) for r in rows]
    rules, clock = PowerRules(), LocalClock()
    states = list(warm_states(rows, warm_days, rng).values())
    data = [[reading_kw(r, T0 + i * 900, rng) for r in rows] for i in range(intervals * repeats)]
    rates = []
    for rep in range(repeats):
        t = time.perf_counter()
        for i in range(rep * intervals, (rep + 1) * intervals):
            ts, row = T0 + i * 900, data[i]
            for j, spec in enumerate(specs):
                observe(spec, rules, clock, states[j], ts, power_kw=row[j])
        rates.append(meters * intervals / (time.perf_counter() - t))
    return statistics.median(rates)


# --------------------------------------------------------------------------- through the agent


def _messages(rows: list[dict], intervals: int, batched: bool, partitions: int, rng: random.Random):
    """(key, value, partition) messages: a batch per partition per interval, or one per reading."""
    for i in range(intervals):
        ts = T0 + i * 900
        if not batched:
            for r in rows:
                yield r["id"], json.dumps({"v": 1, "source_id": "bench", "meter_id": r["id"], "ts": ts,
                                           "power_kw": reading_kw(r, ts, rng)}).encode(), None
            continue
        groups: dict[int, list] = {}
        for r in rows:
            groups.setdefault(partition_for(r["id"], partitions), []).append(
                {"meter_id": r["id"], "ts": ts, "power_kw": reading_kw(r, ts, rng)})
        for p, items in groups.items():
            for k in range(0, len(items), 500):
                chunk = items[k:k + 500]
                yield chunk[0]["meter_id"], json.dumps({"v": 1, "source_id": "bench", "readings": chunk}).encode(), p


def preload_state(bootstrap: str, config_dir: Path, states: dict[str, dict], partitions: int) -> None:
    """Write warm rule state into the power tables' changelogs, as a running worker would
    have: the measured worker recovers it on start and carries on from there."""
    app_id = load_config(config_dir).runtime.app.id
    state_topic = f"{app_id}-meter-state-changelog"  # a meter's state and its buckets, one table

    async def run():
        await ensure_topics(bootstrap, [NewTopic(t, partitions, 1, topic_configs={"cleanup.policy": "compact"})
                                        for t in (state_topic,)])
        async with KafkaSink(bootstrap, "bench-state", linger_ms=20) as sink:
            sent = []
            for meter_id, state in states.items():
                p = partition_for(meter_id, partitions)  # a table partition is its source partition
                core = {k: v for k, v in state.items() if k != "buckets"}
                entries = [(state_topic, *encode_entry(meter_id, core))]
                entries += [(state_topic, *encode_entry(f"{meter_id}/{b}", samples))
                            for b, samples in state["buckets"].items()]
                for topic, key, value in entries:
                    sent.append(await sink.send(topic, key, value, partition=p, wait=False))
            await asyncio.gather(*sent)

    asyncio.run(run())


def bench_agent(bootstrap: str, workdir: Path, rows: list[dict], warm: dict[str, dict], intervals: int,
                batched: bool, loop_lag: dict | None = None) -> float:
    tag = "batched" if batched else "single"
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-", dir=workdir))
    config_dir = without_cameras(isolated_config(run_dir, f"bench-{tag}", partitions=4, log_level="warning"))
    (config_dir / "meters.yaml").write_text(yaml.safe_dump({"utility": "bench", "meters": rows}))
    preload_state(bootstrap, config_dir, warm, 4)
    probe = rows[len(rows) - 1]["id"]

    def recovered_warm_state(worker) -> None:
        detail = http_json(worker.url(f"/state/meters/{probe}"))
        samples = sum(len(v) for v in detail["buckets"].values())
        if samples < sum(len(v) for v in warm[probe]["buckets"].values()):
            raise RuntimeError(f"the worker did not start from the warm state ({samples} baseline samples)")

    messages = list(_messages(rows, intervals, batched, 4, random.Random(2)))
    return agent_rate(bootstrap, config_dir, "meter-readings", messages, len(rows) * intervals,
                      run_dir / "worker.log", check=recovered_warm_state, loop_lag=loop_lag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke check)")
    args = parser.parse_args()
    quick = args.quick

    print("== quality on REAL metered series (tests/bench/power_real.py: what each figure is measured on) ==")
    try:
        real_main(["--quick"] if quick else [])
        yardstick_main([])
    except DataMissing as exc:
        print(f"skipped: {exc}")

    print("\n== quality (seeded labelled series, every kind of finding) ==")
    print_report(quality_main(meters=100 if quick else 300, days=60 if quick else 90, seed=42))

    print("\n== throughput: rules alone (plain data, one core) ==")
    rules_rate = bench_rules(meters=500 if quick else 2000, intervals=5 if quick else 10, repeats=3 if quick else 5)
    print(f"rules alone: median {rules_rate:,.0f} readings/s")

    print("\n== throughput: power agent on the real broker (one worker) ==")
    # 1,000 meters with two weeks of history behind them (baselines warm, recovered by the
    # worker from its changelogs), then a day of 15-minute readings, timed.
    rows = county_meters(1000)
    warm = warm_states(rows, 14, random.Random(3))
    with bench_broker() as (broker, tmp):
        lags = [{} for _ in range(1 if quick else 3)]
        batched = [bench_agent(broker.bootstrap, Path(tmp), rows, warm, 24 if quick else 96, True, loop_lag=lag)
                   for lag in lags]
        single = [bench_agent(broker.bootstrap, Path(tmp), rows, warm, 4 if quick else 12, False)
                  for _ in range(1 if quick else 3)]
    b, s = statistics.median(batched), statistics.median(single)
    print(f"batched (500 readings/message, warm state): median {b:,.0f} readings/s  runs {[round(x) for x in batched]}")
    print(f"one reading per message:        median {s:,.0f} readings/s  runs {[round(x) for x in single]}")
    print(f"batched / single: {b / s:.1f}x; target 20,000 readings/s through the agent: "
          f"{'met' if b >= 20000 else 'NOT met'} (batched)")
    print(f"the worker's event loop while the agent works the batched backlog (probe every 50 ms): longest stall "
          f"{statistics.median(lag['max_s'] for lag in lags) * 1000:.0f} ms (median of runs), probes late by more than "
          + ", ".join(f"{float(le) * 1000:g} ms {statistics.median(lag[f'late_{le}'] for lag in lags):.1%}"
                      for le in LAG_BUCKETS)
          + f"; full garbage collections {statistics.median(lag['full_gc'] for lag in lags):.0f}, of them over 100 ms "
            f"{statistics.median(lag['full_gc_over_0.1'] for lag in lags):.0f} (medians)")


if __name__ == "__main__":
    main()
