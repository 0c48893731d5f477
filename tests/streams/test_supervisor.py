"""`shaftwatch run` (what `make run` calls): its own broker, worker, server and demo feeds,
all stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.ops.local_broker import free_port, port_open
from tests.helpers import REPO, http_json, isolated_config, wait_for


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


def test_run_starts_everything_and_ctrl_c_stops_everything(tmp_path):
    kafka_port, controller_port = free_port(), free_port()
    config_dir = isolated_config(tmp_path, "run", kafka={"bootstrap": None, "local": {
        "port": kafka_port, "controller_port": controller_port}}, demo={"meter_history_days": 1})
    runtime = (config_dir / "shaftwatch.yaml").read_text()
    import yaml
    settings = yaml.safe_load(runtime)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update(SHAFTWATCH_CONFIG_DIR=str(config_dir), SHAFTWATCH_PSEUDONYM_KEY="test-key")
    log = open(tmp_path / "run.log", "wb")
    run = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "run", "--theft-site", "S01", "--theft-after", "2"],
                           env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    worker_url = f"http://127.0.0.1:{settings['app']['worker_web_port']}"
    server_url = f"http://127.0.0.1:{settings['http']['port']}"
    try:
        health = wait_for(lambda: http_json(f"{server_url}/health"), 120, what="server health")
        assert health["kafka"] == "ok"
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
        children = children_of(run.pid)
        assert len(children) >= 5  # worker, server, three feeders (the broker is one more)
    finally:
        run.send_signal(signal.SIGINT)
        rc = run.wait(90)
        log.close()
    assert rc == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert not any(alive(pid) for pid in children), "a child outlived `shaftwatch run`"
    assert not port_open("127.0.0.1", kafka_port), "the local broker is still listening"
    assert not (tmp_path / "data" / "kafka" / "broker.pid").exists()
