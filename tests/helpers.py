"""Test helpers: a private config directory and a real worker process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer

from detectors.timeofday import LocalClock
from streams.kafka.producer import KafkaSink
from streams.ops.processes import stop_process

REPO = Path(__file__).resolve().parent.parent
# Made by others, beside the checkout (../shared): the offline detector and real footage.
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "nanodet-m-coco-416.onnx"
PEOPLE = SHARED / "data" / "intel_sample_videos" / "one-by-one-person-detection.mp4"
CARS = SHARED / "data" / "intel_sample_videos" / "car-detection.mp4"
SHARED_FOOTAGE = MODEL.exists() and PEOPLE.exists() and CARS.exists()  # tests skip without it


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (see free_port_block)."""
    return free_port_block(1)


def free_port_block(count: int) -> int:
    """The first of `count` consecutive ports on 127.0.0.1 that nothing listens on, below the
    kernel's ephemeral range (32768-60999 here), so that no port the kernel hands out later
    (a client connection's local port) can take one before its server binds it; none is
    handed out twice in a run. (Ports from bind(0) were taken that way: a worker's web
    port refused every request in a CI run, the supervisor's /metrics in another.)"""
    rng = random.Random()
    for _ in range(500):
        first = rng.randrange(20000, 32700)
        block = set(range(first, first + count))
        if not block & _HANDED_OUT and all(_can_bind(p) for p in block):
            _HANDED_OUT.update(block)
            return first
    raise RuntimeError(f"no {count} consecutive free ports found between 20000 and 32700")


def _can_bind(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def make_config_dir(target: Path, **runtime_overrides) -> Path:
    """Copy configs/ to target and apply overrides to shaftwatch.yaml (nested dicts merge)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "configs").glob("*.yaml"):
        shutil.copy(path, target / path.name)
    runtime = yaml.safe_load((target / "shaftwatch.yaml").read_text())
    _merge(runtime, runtime_overrides)
    (target / "shaftwatch.yaml").write_text(yaml.safe_dump(runtime, allow_unicode=True))
    return target


def _merge(base: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def isolated_config(tmp_path: Path, name: str, partitions: int = 2, **extra) -> Path:
    """A config whose topics, consumer group and data dir belong to one test only."""
    unique = f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "app": {"id": unique, "worker_web_port": free_port(), "topics": {"prefix": f"{unique}.", "partitions": partitions}},
        # The feeders and the supervisor serve on feeder_ops_port + 0..3.
        "http": {"port": free_port(), "feeder_ops_port": free_port_block(4)},
    }
    _merge(overrides, extra)
    return make_config_dir(tmp_path / "configs", **overrides)


def http_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


@contextlib.asynccontextmanager
async def serving(cfg, port: int | None = None):
    """The real HTTP server app (ingest, console API) on a loopback port (a free one unless
    given); yields its base URL."""
    from aiohttp import web

    from streams.ops.server import create_web_app

    runner = web.AppRunner(create_web_app(cfg))
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def all_incidents(store) -> list[dict]:
    """Every incident in an alert store, oldest first (for tests: the store serves the open list)."""
    import sqlalchemy as sa

    from alerts.store.schema import incidents
    with store.engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(sa.select(incidents).order_by(incidents.c.opened_at))]


def count_signals(store) -> int:
    """How many signals an alert store holds as evidence."""
    import sqlalchemy as sa

    from alerts.store.schema import incident_signals
    with store.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(incident_signals)).scalar_one()


def counter(worker: WorkerProcess, pattern: str) -> float:
    """The value of one sample on the worker's /metrics page (0 when absent). A metric
    name without labels sums all its samples of that name, labelled or not."""
    return metric_sample(urllib.request.urlopen(worker.url("/metrics"), timeout=5).read().decode(), pattern)


def metric_sample(text: str, pattern: str) -> float:
    """``counter`` on a /metrics page already read (several samples from one moment)."""
    if "{" not in pattern:
        return sum(float(v) for v in re.findall(r"^" + re.escape(pattern) + r"(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M))
    m = re.search(re.escape(pattern) + r" ([0-9.e+]+)", text)
    return float(m.group(1)) if m else 0.0


class WorkerProcess:
    """`shaftwatch worker` as a real child process, stopped by its PID."""

    def __init__(self, config_dir: Path, bootstrap: str, log_path: Path, port: int | None = None):
        """``port``: the worker's web port, for a second worker on the same config."""
        self.config_dir = config_dir
        self.bootstrap = bootstrap
        self.log_path = log_path
        runtime = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
        self.port = port or runtime["app"]["worker_web_port"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ, SHAFTWATCH_CONFIG_DIR=str(self.config_dir), KAFKA_BOOTSTRAP=self.bootstrap,
                   SHAFTWATCH_WORKER_WEB_PORT=str(self.port))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "worker"], env=env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str):
        return http_json(self.url(path))

    def wait_ready(self, topic_suffix: str = "meter-readings", timeout: float = 90.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log: {self.log_tail()}")
            health = self.get("/health")
            return (not health["rebalancing"]) and any(p.split(":")[0].endswith(topic_suffix)
                                                        for p in health["active_partitions"])
        wait_for(ready, timeout, what=f"worker ready ({self.log_path})")

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        return stop_process(self.proc, timeout) if self.proc is not None else 0


class ServerProcess:
    """`shaftwatch server` (ingest, console API) as a real child process, stopped by its PID;
    ``env`` adds tokens and keys to its environment."""

    def __init__(self, config_dir: Path, bootstrap: str, log_path: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        env = dict(os.environ, SHAFTWATCH_CONFIG_DIR=str(config_dir), KAFKA_BOOTSTRAP=bootstrap, **(env or {}))
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "server", "--port", str(self.port)],
                                         env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            wait_for(lambda: http_json(self.url("/health"))["kafka"] == "ok", 60, what=f"server up ({log_path})")
        except BaseException:
            self.stop()
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        return stop_process(self.proc, 20)


# --------------------------------------------------------------------------- Kafka


def meter_reading(meter_id: str, ts: float, kwh: float = 1.0) -> bytes:
    return json.dumps({"v": 1, "source_id": "utility-test", "meter_id": meter_id, "ts": ts,
                       "energy_kwh": kwh}).encode()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list | None]]) -> None:
    async with KafkaSink(bootstrap, "test") as sink:
        for key, value, headers in records:
            await sink.send(topic, key, value, headers=headers)


async def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
    finally:
        await consumer.stop()
    return out


# --------------------------------------------------------------------------- data


def jpegs(path: Path, indexes: list[int]) -> list[bytes]:
    """Frames of a video, by index, as JPEG bytes."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    for i in indexes:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok, i
        out.append(cv2.imencode(".jpg", frame)[1].tobytes())
    return out


def night_ts() -> float:
    """02:00 local time (UTC+8) on the last night, interval-aligned."""
    t = LocalClock().last(2.0, time.time())
    return t - 86400 if t > time.time() - 3 * 3600 else t


def without_cameras(config_dir: Path) -> Path:
    """A worker for meters, fences or signals only: with no camera configured the vision
    agent does not load the object detector, whose seconds of start-up CPU would
    otherwise be counted against the agent being measured."""
    (config_dir / "cameras.yaml").write_text("cameras: []\n")
    return config_dir


def same_boxes(reference, other, image) -> int:
    """Run two ultralytics models on one picture and assert that every person, car and truck
    box of ``reference`` (score 0.3 or more) has a box of ``other`` with the same label,
    overlap 0.85 or more and a score within 0.1. -> how many boxes were matched."""
    from detectors.boxes import iou

    a = reference.predict(image, verbose=False, conf=0.3)[0].boxes
    b = other.predict(image, verbose=False, conf=0.2)[0].boxes
    matched = 0
    for label, score, box in zip(a.cls.tolist(), a.conf.tolist(), a.xyxy.tolist()):
        if label not in (0, 2, 7):  # person, car, truck: what the rules look at
            continue
        same = [s for c, s, o in zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist())
                if c == label and iou(tuple(box), tuple(o)) >= 0.85]
        assert same and abs(max(same) - score) < 0.1, (label, score, box, b)
        matched += 1
    return matched
