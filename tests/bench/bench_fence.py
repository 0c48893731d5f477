"""`make bench-fence`: pings/s through the fence rules alone and through the fence agent on
a real broker (one worker). Medians of several runs; not a test."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from detectors.fence import (
    FenceRules, Ping, ZoneIndex, new_device_state, new_zone_state, observe_ping, observe_presence,
)
from detectors.timeofday import LocalClock
from streams.config import load_config
from streams.contract.partitioning import partition_for
from tests.bench.agent_rate import agent_rate, bench_broker
from tests.bench.fence_real import main as real_main
from tests.bench.real_data import DataMissing
from tests.helpers import REPO, counter, isolated_config, wait_for, without_cameras

SIGNALS_RAISED = "shaftwatch_signals_total"
INCIDENT_CHANGES = "shaftwatch_incident_changes_total"  # one per signal fusion stored (duplicates too)


def county_pings(n: int, devices: int, seed: int) -> list[dict]:
    """Pings of many devices around the demo county's zones: most pass by, some stay."""
    cfg = load_config(REPO / "configs")
    zones = [z for z in cfg.fences.zones if z.polygon]
    cells = [c for z in cfg.fences.zones for c in (z.cells or [])]
    rng = random.Random(seed)
    t0 = time.time() - 2 * 86400
    out = []
    for i in range(n):
        d = rng.randrange(devices)
        ping = {"v": 1, "source_id": "CMCC", "device_pid": f"p1:{d:032x}", "device_kind":
                "vehicle_terminal" if d % 20 == 0 else "phone", "ts": t0 + i * (86400 / n)}
        if d % 5 == 0:
            ping["cell_id"] = rng.choice(cells)
        else:
            z = zones[d % len(zones)]
            xs, ys = [p[0] for p in z.polygon], [p[1] for p in z.polygon]
            ping.update(lon=rng.uniform(min(xs) - 0.01, max(xs) + 0.01), lat=rng.uniform(min(ys) - 0.01, max(ys) + 0.01),
                        accuracy_m=rng.uniform(20, 400))
        out.append(ping)
    return out


def bench_rules(pings: list[dict], repeats: int) -> float:
    cfg = load_config(REPO / "configs")
    index = ZoneIndex([z.zone() for z in cfg.fences.zones])
    rules, clock = FenceRules(), LocalClock()
    objs = [Ping(p["device_pid"], p["device_kind"], p["ts"], p.get("lon"), p.get("lat"), p.get("accuracy_m"),
                 p.get("cell_id")) for p in pings]
    rates = []
    for _ in range(repeats):
        devices, zones = {}, {}
        t = time.perf_counter()
        for ping in objs:
            state = devices.get(ping.device_pid) or new_device_state()
            _, events = observe_ping(state, ping, index.locate(ping, rules), index, rules, clock)
            devices[ping.device_pid] = state
            for e in events:
                observe_presence(zones.setdefault(e.zone_id, new_zone_state()), e, rules, clock)
        rates.append(len(objs) / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print("== the rules on real movement and on generated residents (tests/bench/fence_real.py) ==")
    try:
        real_main()
    except DataMissing as exc:
        print(f"skipped: {exc}")
    print()
    n = 20_000 if args.quick else 100_000
    pings = county_pings(n, devices=5000, seed=1)
    print("== throughput: fence rules alone (plain data, one core) ==")
    print(f"rules alone: median {bench_rules(pings, 3 if args.quick else 5):,.0f} pings/s over {n:,} pings")
    print("\n== throughput: fence agent on the real broker (one worker) ==")
    single = [(p["device_pid"], json.dumps(p).encode(), partition_for(p["device_pid"], 4)) for p in pings]
    batched, groups = [], {}
    for p in pings:  # as the HTTP ingest sends them: batches of one partition's devices
        groups.setdefault(partition_for(p["device_pid"], 4), []).append(p)
    for part, group in groups.items():
        for k in range(0, len(group), 500):
            chunk = group[k:k + 500]
            rows = [{f: v for f, v in p.items() if f not in ("v", "source_id")} for p in chunk]
            batched.append((chunk[0]["device_pid"], json.dumps({"v": 1, "source_id": "CMCC", "pings": rows}).encode(),
                            part))
    results = {"batched": [], "single": []}
    fusion: dict[str, list[tuple[float, float, float]]] = {"batched": [], "single": []}

    def fusion_backlog(tag: str):
        def check(worker) -> None:
            # Pings/s is timed to the last ping accepted. The signals those pings raised go
            # through fusion in the same worker: how many were stored by then, and how long
            # after it the store caught up (every raised signal stored, the count steady).
            raised, stored = counter(worker, SIGNALS_RAISED), counter(worker, INCIDENT_CHANGES)
            t = time.perf_counter()
            wait_for(lambda: (n := counter(worker, SIGNALS_RAISED)) == counter(worker, INCIDENT_CHANGES)
                     and n == counter(worker, SIGNALS_RAISED), 300, interval=0.05, what="fusion to catch up")
            fusion[tag].append((raised, stored, time.perf_counter() - t))
        return check

    with bench_broker() as (broker, tmp):
        for run in range(1 if args.quick else 3):
            for tag, messages in (("batched", batched), ("single", single)):
                run_dir = Path(tmp) / f"{tag}{run}"
                config_dir = without_cameras(isolated_config(run_dir, f"bench-fence-{tag}", partitions=4, log_level="warning"))
                results[tag].append(agent_rate(broker.bootstrap, config_dir, "fence-pings", messages, n,
                                               run_dir / "worker.log", check=fusion_backlog(tag)))
    for tag, label in (("batched", "batched (500 pings/message)"), ("single", "one ping per message:      ")):
        rates = results[tag]
        # The same runs timed until fusion had stored every signal (first record -> caught up).
        settled = [n / (n / r + lag) for r, (_, _, lag) in zip(rates, fusion[tag])]
        print(f"{label} median {statistics.median(rates):,.0f} pings/s  runs {[round(r) for r in rates]}")
        print(f"    signals raised/stored when the last ping was in: "
              f"{', '.join(f'{e:,.0f}/{f:,.0f}' for e, f, _ in fusion[tag])}; fusion caught up "
              f"{', '.join(f'{lag:.1f}' for _, _, lag in fusion[tag])} s later; timed to that point: median "
              f"{statistics.median(settled):,.0f} pings/s")
    b, s_ = statistics.median(results["batched"]), statistics.median(results["single"])
    print(f"batched / single: {b / s_:.1f}x; target 20,000 pings/s through the agent: "
          f"{'met' if b >= 20000 else 'NOT met'} (batched)")

if __name__ == "__main__":
    main()
