"""`make soak` (SOAK_S=600 by default): `shaftwatch run` with the demo county and its demo
feeds (cameras, meters, fences) for a bounded time, then Ctrl-C. Records, at the start
(after a warm-up) and at the end: the resident memory (RSS) of every process it started,
the workers' consumer lag, and signal -> store p99 from the worker's histogram over each
window. Not a test: it prints figures, and exits 1 when RSS grew more than 5% or the lag
grew. Everything runs on 127.0.0.1 with a private config and data directory; every
process it started is stopped by its PID."""

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

from tests.helpers import REPO, free_port, isolated_config, wait_for

WARMUP_S = 120.0


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


def snapshot(pid: int, worker_metrics: str) -> dict:
    text = metrics(worker_metrics)
    processes = {f"{name_of(cmd)} ({child})": rss_mb(child) for child, cmd in descendants(pid).items()
                 if "streams.ops.cli" in cmd or "kafka.Kafka" in cmd}
    processes[f"supervisor ({pid})"] = rss_mb(pid)
    return {"at": time.time(), "rss_mb": processes, "lag": lag(text),
            "hist": histogram(text, "shaftwatch_signal_to_store_seconds")}


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
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shaftwatch-soak-"))
    config_dir = isolated_config(tmp, "soak", kafka={"bootstrap": None, "local": {
        "port": free_port(), "controller_port": free_port()}}, demo={"meter_history_days": 1})
    settings = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    worker_metrics = f"http://127.0.0.1:{settings['app']['worker_web_port']}/metrics"
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "SHAFTWATCH_DATA_DIR")}
    env.update(SHAFTWATCH_CONFIG_DIR=str(config_dir), SHAFTWATCH_PSEUDONYM_KEY="soak-key")
    log_path = tmp / "run.log"
    print(f"soak: {args.seconds:.0f} s of `shaftwatch run` (demo county, theft at S01), log in {log_path}", flush=True)
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "run", "--theft-site", "S01",
                                "--theft-after", "30"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "shaftwatch_records_accepted_total" in metrics(worker_metrics), 180, what="the worker")
        time.sleep(min(WARMUP_S, args.seconds / 4))
        start = snapshot(run.pid, worker_metrics)
        alive_for(run, args.seconds / 2)
        middle = snapshot(run.pid, worker_metrics)
        alive_for(run, args.seconds / 2)
        end = snapshot(run.pid, worker_metrics)
    finally:
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
    print("\n".join([
        f"soak over {end['at'] - start['at']:.0f} s (after a {min(WARMUP_S, args.seconds / 4):.0f} s warm-up); "
        f"`shaftwatch run` exited {rc}",
        "RSS at start and end:", *rows,
        f"consumer lag (records, all held partitions): start {start['lag']:.0f}, end {end['lag']:.0f}",
        f"signal -> store p99 (histogram bucket bound): first half {first} s, second half {second} s",
    ]))
    (tmp / "soak.json").write_text(json.dumps({"start": start, "end": end}, default=str, indent=1))
    if grew or end["lag"] > max(100.0, 2 * start["lag"]) or rc != 0:
        print(f"soak target missed: RSS grew > 5% in {grew or 'none'}; lag {start['lag']:.0f} -> {end['lag']:.0f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
