"""`make soak` (SOAK_S=600 by default): `shaftwatch run` with the demo county for a bounded
time, then Ctrl-C, under a load: the demo cameras and fence feed as usual, and the power
utility and a carrier pushing over the HTTP ingest at fixed rates (SOAK_METER_RATE readings/s,
SOAK_PING_RATE pings/s; tests/bench/soak_load.py says how). Records, at the start (after a
warm-up), the middle and the end: the resident memory (RSS) of every process it started,
the workers' consumer lag, signal -> store p99 from the worker's histogram, and what the
ingest accepted and how fast it answered. Not a test: it prints figures, and exits 1 when
RSS grew more than 5%, the lag grew, or the ingest did not take the load. Everything runs
on 127.0.0.1 with a private config and data directory; every process it started is
stopped by its PID."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from streams.config import load_config

from tests.bench.bench_power import county_meters
from tests.bench.soak_load import IngestLoad, window
from tests.helpers import REPO, free_port, isolated_config, wait_for

WARMUP_S = 120.0
UTILITY_TOKEN, CARRIER_TOKEN = "soak-utility-token", "soak-carrier-token"


def descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every process under ``pid``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, p in parents.items():
            if p == parent and child not in found:
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) / 1024


def name_of(cmdline: str) -> str:
    if "kafka.Kafka" in cmdline:
        return "kafka"
    match = re.search(r"streams\.ops\.cli (\w+)(?: (\w+))?", cmdline)
    return " ".join(g for g in match.groups() if g) if match else cmdline[:40]


def metrics(url: str) -> str:
    return urllib.request.urlopen(url, timeout=10).read().decode()


def lag(text: str) -> float:
    return sum(float(v) for v in re.findall(r"^shaftwatch_consumer_lag_records\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def histogram(text: str, name: str) -> dict[float, float]:
    """le -> cumulative count of a histogram without other labels."""
    return {float("inf") if le == "+Inf" else float(le): float(v)
            for le, v in re.findall(r"^" + name + r'_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.M)}


def p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 99th percentile of what a histogram counted between two scrapes (bucket bound)."""
    counts = {le: after[le] - before.get(le, 0.0) for le in after}
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(counts):
        if counts[le] >= 0.99 * total:
            return le
    return None


def snapshot(pid: int, worker_metrics: str, load: IngestLoad) -> dict:
    text = metrics(worker_metrics)
    processes = {f"{name_of(cmd)} ({child})": rss_mb(child) for child, cmd in descendants(pid).items()
                 if "streams.ops.cli" in cmd or "kafka.Kafka" in cmd}
    processes[f"supervisor ({pid})"] = rss_mb(pid)
    return {"at": time.time(), "rss_mb": processes, "lag": lag(text),
            "hist": histogram(text, "shaftwatch_signal_to_store_seconds"), "load": load.snapshot()}


def alive_for(run: subprocess.Popen, seconds: float) -> None:
    """Wait ``seconds``, or less if `shaftwatch run` exits meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    if run.poll() is not None:
        raise RuntimeError(f"`shaftwatch run` exited with {run.returncode} during the soak")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_S") or 600))
    parser.add_argument("--meter-rate", type=float, default=float(os.environ.get("SOAK_METER_RATE") or 1000),
                        help="meter readings/s pushed to the HTTP ingest")
    parser.add_argument("--ping-rate", type=float, default=float(os.environ.get("SOAK_PING_RATE") or 500),
                        help="fence pings/s pushed to the HTTP ingest")
    parser.add_argument("--meters", type=int, default=200, help="meters in the soak's county (demo ones included)")
    args = parser.parse_args()
    warmup = min(WARMUP_S, args.seconds / 4)
    tmp = Path(tempfile.mkdtemp(prefix="shaftwatch-soak-"))
    config_dir = isolated_config(tmp, "soak", kafka={"bootstrap": None, "local": {
        "port": free_port(), "controller_port": free_port()}})
    meters_file = yaml.safe_load((config_dir / "meters.yaml").read_text())
    meters_file["meters"] += county_meters(max(0, args.meters - len(meters_file["meters"])))
    (config_dir / "meters.yaml").write_text(yaml.safe_dump(meters_file, allow_unicode=True))
    settings = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    worker_metrics = f"http://127.0.0.1:{settings['app']['worker_web_port']}/metrics"
    server = f"http://127.0.0.1:{settings['http']['port']}"
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "SHAFTWATCH_DATA_DIR")}
    env.update(SHAFTWATCH_CONFIG_DIR=str(config_dir), SHAFTWATCH_PSEUDONYM_KEY="soak-key",
               SHAFTWATCH_TOKEN_UTILITY=UTILITY_TOKEN, SHAFTWATCH_TOKEN_CMCC=CARRIER_TOKEN)
    load = IngestLoad(load_config(config_dir), server, args.meter_rate, args.ping_rate, UTILITY_TOKEN, CARRIER_TOKEN,
                      span_s=args.seconds + warmup + 60)
    log_path = tmp / "run.log"
    print(f"soak: {args.seconds:.0f} s of `shaftwatch run` (demo county with {len(load.meters)} meters, theft at "
          f"S01) under {args.meter_rate:,.0f} readings/s and {args.ping_rate:,.0f} pings/s over HTTP; "
          f"log in {log_path}", flush=True)
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "run", "--theft-site", "S01",
                                "--theft-after", "30", "--demo-feeds", "cameras,fences"],
                               env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "shaftwatch_records_accepted_total" in metrics(worker_metrics), 180, what="the worker")
        wait_for(lambda: urllib.request.urlopen(server + "/health", timeout=5).status == 200, 60, what="the server")
        load.start()
        time.sleep(warmup)
        start = snapshot(run.pid, worker_metrics, load)
        alive_for(run, args.seconds / 2)
        middle = snapshot(run.pid, worker_metrics, load)
        alive_for(run, args.seconds / 2)
        end = snapshot(run.pid, worker_metrics, load)
    finally:
        try:
            if load.is_alive():
                load.stop()
        finally:  # whatever happened above, `shaftwatch run` and its children are stopped
            run.send_signal(signal.SIGINT)
            rc = run.wait(120)
    rows, grew = [], []
    for name, before in start["rss_mb"].items():
        after = end["rss_mb"].get(name, 0.0)
        change = (after - before) / before * 100 if before else 0.0
        rows.append(f"  {name:<32} {before:8.1f} MB -> {after:8.1f} MB  ({change:+.1f}%)")
        if change > 5.0:
            grew.append(name)
    first, second = p99(start["hist"], middle["hist"]), p99(middle["hist"], end["hist"])
    seconds = end["at"] - start["at"]
    print("\n".join([
        f"soak over {seconds:.0f} s (after a {warmup:.0f} s warm-up); `shaftwatch run` exited {rc}",
        "RSS at start and end:", *rows,
        f"consumer lag (records, all held partitions): start {start['lag']:.0f}, middle {middle['lag']:.0f}, "
        f"end {end['lag']:.0f}",
        f"signal -> store p99 (histogram bucket bound): first half {first} s, second half {second} s",
        *(f"ingest {feed}: {window(start['load'][feed], end['load'][feed], seconds)}" for feed in ("meters", "fences")),
    ]))
    (tmp / "soak.json").write_text(json.dumps({"start": start, "end": end}, default=str, indent=1))
    took = all(after.accepted - start["load"][feed].accepted >= 0.95 * (after.offered - start["load"][feed].offered)
               for feed, after in end["load"].items())
    if grew or end["lag"] > max(100.0, 2 * start["lag"]) or rc != 0 or not took:
        print(f"soak target missed: RSS grew > 5% in {grew or 'none'}; lag {start['lag']:.0f} -> {end['lag']:.0f}; "
              f"ingest took the offered load: {took}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
