"""`shaftwatch run` (what `make run` calls): its own broker, worker, server and demo feeds,
all stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from streams.ops.local_broker import port_open
from tests.helpers import REPO, free_port, http_json, isolated_config, wait_for


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def theft_incident(server_url: str, token: str):
    """The S01 incident once it is critical with camera, power and fence evidence, else None."""
    request = urllib.request.Request(f"{server_url}/api/incidents", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        incidents = json.loads(response.read())["incidents"]
    for incident in incidents:
        if incident["site_id"] == "S01" and incident["severity"] == "critical" and \
                set(incident["draft"]["strongest"]) == {"vision", "power", "fence"}:
            return incident
    return None


def test_run_starts_everything_stages_the_theft_every_time_and_ctrl_c_stops_everything(tmp_path):
    """Two theft rehearsals in a row (as `make run THEFT=S01` twice the same day): each one
    shows one critical S01 incident with its three sources, on a fresh state of its own."""
    kafka_port, controller_port = free_port(), free_port()
    config_dir = isolated_config(tmp_path, "run", kafka={"bootstrap": None, "local": {
        "port": kafka_port, "controller_port": controller_port}}, demo={"meter_history_days": 1},
        api_clients=[{"name": "test", "token_env": "SHAFTWATCH_TOKEN_TEST", "role": "patrol"}])
    settings = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "SHAFTWATCH_DATA_DIR")}
    env.update(SHAFTWATCH_CONFIG_DIR=str(config_dir), SHAFTWATCH_PSEUDONYM_KEY="test-key",
               SHAFTWATCH_TOKEN_TEST="duty-token")
    worker_url = f"http://127.0.0.1:{settings['app']['worker_web_port']}"
    server_url = f"http://127.0.0.1:{settings['http']['port']}"
    rehearsals = tmp_path / "data" / "rehearsals"
    seen = []
    for attempt in range(2):
        log = open(tmp_path / f"run-{attempt}.log", "wb")
        run = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "run", "--theft-site", "S01",
                                "--theft-after", "2"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        children: set[int] = set()
        try:
            health = wait_for(lambda: http_json(f"{server_url}/health"), 120, what="server health")
            assert health["kafka"] == "ok"
            children = children_of(run.pid)
            assert len(children) >= 5  # worker, server, three feeders (the broker is one more)
            if attempt == 0:
                cameras = wait_for(lambda: (c := http_json(f"{worker_url}/feeds/cameras")) and
                                   all(c.get(cam, {}).get("count", 0) >= 3 for cam in ("CAM-S01-A", "CAM-J1")) and c,
                                   120, what="frames from the demo cameras")
                assert set(cameras) == {"CAM-S01-A", "CAM-S03-A", "CAM-S04-A", "CAM-J1"}
                # A day of history from every one of the 40 meters (sent interval by interval).
                wait_for(lambda: (m := http_json(f"{worker_url}/feeds/meters")) and len(m) == 40 and
                         all(v["count"] >= 96 for v in m.values()), 120, what="a day of readings from all 40 meters")
                assert port_open("127.0.0.1", kafka_port)
                feeder_health = http_json(f"http://127.0.0.1:{settings['http']['feeder_ops_port']}/health")
                assert feeder_health["component"] == "demo-meters"
            incident = wait_for(lambda: theft_incident(server_url, "duty-token"), 180,
                                what=f"rehearsal {attempt + 1}: a critical S01 incident with its three sources")
            seen.append(incident["id"])
            children |= children_of(run.pid)
        finally:
            run.send_signal(signal.SIGINT)
            rc = run.wait(90)
            log.close()
        output = (tmp_path / f"run-{attempt}.log").read_text()
        assert rc == 0, output[-3000:]
        assert "sign in as duty" in output  # the demo users' one-time passwords for this run
        assert not any(alive(pid) for pid in children), "a child outlived `shaftwatch run`"
        assert not port_open("127.0.0.1", kafka_port), "the local broker is still listening"
    states = sorted(p for p in rehearsals.iterdir() if p.is_dir())
    assert len(states) == 2 and not any((p / "kafka" / "broker.pid").exists() for p in states)
    assert len(seen) == 2


def get_json(url: str, timeout: float = 10.0) -> tuple[int, dict]:
    """(status, JSON body) of a GET, a 5xx answer included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_readings(server_url: str, rows: list[dict], timeout: float = 30.0) -> tuple[int, dict, dict, float]:
    """(status, body, headers, seconds taken) of one POST of meter readings."""
    request = urllib.request.Request(f"{server_url}/ingest/meter-readings", data=json.dumps(rows).encode(),
                                     method="POST", headers={"Authorization": "Bearer utility-token",
                                                             "Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), dict(response.headers), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers), time.monotonic() - started


def test_run_heals_a_dead_local_broker(tmp_path):
    """SIGKILL of the local broker under `shaftwatch run`: the worker's /health says Kafka is
    unreachable, the ingest answers 503 with Retry-After within a bounded time instead of
    hanging, the supervisor starts the broker again (after its backoff, logged, counted),
    and the batch sent again then is acknowledged and processed; nothing acknowledged is lost."""
    kafka_port, controller_port = free_port(), free_port()
    # The supervisor serves its /metrics three ports after the (here unused) feeders' first,
    # a block that isolated_config keeps clear of every port the kernel hands out.
    config_dir = isolated_config(tmp_path, "heal", kafka={"bootstrap": None, "local": {
        "port": kafka_port, "controller_port": controller_port}})
    (config_dir / "cameras.yaml").write_text("cameras: []\n")
    settings = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "SHAFTWATCH_DATA_DIR")}
    # The broker comes back 10 s after it died: long enough to see the outage from outside.
    env.update(SHAFTWATCH_CONFIG_DIR=str(config_dir), SHAFTWATCH_PSEUDONYM_KEY="test-key",
               SHAFTWATCH_TOKEN_UTILITY="utility-token", SHAFTWATCH_RESTART_BASE_S="10")
    worker_url = f"http://127.0.0.1:{settings['app']['worker_web_port']}"
    server_url = f"http://127.0.0.1:{settings['http']['port']}"
    metrics_url = f"http://127.0.0.1:{settings['http']['feeder_ops_port'] + 3}/metrics"
    t = (time.time() // 900) * 900 - 4 * 900
    meters = [f"M-{i:04d}" for i in range(1, 41)]
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "run", "--no-demo"], env=env, cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: get_json(f"{worker_url}/health")[1]["active_partitions"], 120, what="worker up")
        status, answer, _, _ = post_readings(server_url, [{"meter_id": m, "ts": t, "power_kw": 1.0} for m in meters])
        assert (status, answer["accepted"]) == (200, 40), answer

        broker_pid = int((tmp_path / "data" / "kafka" / "broker.pid").read_text())
        os.kill(broker_pid, signal.SIGKILL)
        wait_for(lambda: not port_open("127.0.0.1", kafka_port), 10, what="the broker gone")
        status, health = wait_for(lambda: (h := get_json(f"{worker_url}/health")) and h[0] == 503 and h, 10,
                                  interval=0.5, what="the worker to report Kafka unreachable")
        assert health["status"] == "degraded" and health["kafka"].startswith("unreachable")

        second = [{"meter_id": m, "ts": t + 900, "power_kw": 2.0} for m in meters]
        status, answer, headers, took = post_readings(server_url, second)
        assert status == 503 and int(headers["Retry-After"]) >= 1 and took < 15, (status, answer, took)
        assert "send it again" in answer["error"]

        wait_for(lambda: port_open("127.0.0.1", kafka_port), 60, what="the supervisor to restart the broker")
        deadline = time.monotonic() + 90
        while (status := post_readings(server_url, second)[0]) != 200 and time.monotonic() < deadline:
            time.sleep(2)
        assert status == 200
        assert get_json(f"{server_url}/health")[0] == 200
        wait_for(lambda: get_json(f"{worker_url}/health")[0] == 200, 30, what="the worker healthy again")
        # Both batches processed, each reading counted once (nothing acknowledged lost).
        wait_for(lambda: (f := get_json(f"{worker_url}/feeds/meters")[1]) and len(f) == 40 and
                 all(v["count"] == 2 for v in f.values()), 90, what="both batches in every meter's state")
        assert "supervisor metrics listening" in log_path.read_text(), log_path.read_text()[-3000:]
        restarts = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
        assert 'shaftwatch_child_restarts_total{child="kafka"} 1.0' in restarts
        assert '"child": "kafka"' in log_path.read_text() and "exited unexpectedly" in log_path.read_text()
    finally:
        run.send_signal(signal.SIGINT)
        rc = run.wait(90)
    assert rc == 0, log_path.read_text()[-3000:]
    assert not port_open("127.0.0.1", kafka_port), "the restarted broker outlived `shaftwatch run`"
