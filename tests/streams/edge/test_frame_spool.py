"""The camera gateway's spool: frames Kafka cannot take wait on local disk, bounded by size
and age, and are forwarded in capture order with their capture times once the link is back.
The last test cuts a real gateway's broker (SIGKILL of its own local broker) and restores it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY

from streams.config import LocalBrokerSettings, load_config
from streams.contract.frames import FrameMeta
from streams.edge.frame_spool import FrameSpool
from streams.kafka.admin import ensure_topics, topic_plan
from streams.ops.local_broker import LocalKafkaBroker
from streams.ops.processes import stop_process
from tests.helpers import REPO, free_port, isolated_config, read_all, wait_for

T0 = 1795000000.0


def meta(seq: int, at: float) -> FrameMeta:
    return FrameMeta("CAM-S01-A", "S01", at, seq)


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("shaftwatch_camera_spool_dropped_total",
                                     {"camera_id": "CAM-S01-A", "reason": reason}) or 0


def test_frames_wait_in_capture_order_and_survive_a_restart(tmp_path):
    spool = FrameSpool(tmp_path, "CAM-S01-A", "S01", max_bytes=10_000, max_age_s=3600, clock=lambda: T0 + 10)
    for seq in (2, 3):
        spool.put(meta(seq, T0 + seq), b"\xff\xd8\xff" + bytes([seq]) * 100)
    spool.put(meta(1, T0 + 1), b"\xff\xd8\xff" + b"\x01" * 100)  # sent earlier, failed later: sorted in
    assert [f.meta.seq for f in spool.oldest(10)] == [1, 2, 3]
    assert spool.oldest(1)[0].jpeg() == b"\xff\xd8\xff" + b"\x01" * 100
    spool.remove(spool.oldest(1)[0])
    (tmp_path / "CAM-S01-A" / "half-written.tmp").write_bytes(b"x")  # a crash mid-write
    (tmp_path / "CAM-S01-A" / "notes.jpg").write_bytes(b"x")  # not ours

    again = FrameSpool(tmp_path, "CAM-S01-A", "S01", max_bytes=10_000, max_age_s=3600, clock=lambda: T0 + 10)
    assert [(f.meta, f.jpeg()[3]) for f in again.oldest(10)] == [(meta(2, T0 + 2), 2), (meta(3, T0 + 3), 3)]
    assert not (tmp_path / "CAM-S01-A" / "half-written.tmp").exists()
    assert (tmp_path / "CAM-S01-A" / "notes.jpg").exists()


def test_the_oldest_go_first_when_the_spool_is_full_or_too_old(tmp_path):
    now = [T0]
    spool = FrameSpool(tmp_path, "CAM-S01-A", "S01", max_bytes=1_000, max_age_s=60, clock=lambda: now[0])
    size_before, age_before = dropped("size"), dropped("age")
    for seq in range(1, 6):
        spool.put(meta(seq, T0 + seq), bytes(300))
    assert [f.meta.seq for f in spool.oldest(10)] == [3, 4, 5]
    assert spool.bytes == 900 and dropped("size") - size_before == 2
    now[0] = T0 + 64.5  # frames 3 and 4 are now older than a minute
    assert [f.meta.seq for f in spool.oldest(10)] == [5]
    assert dropped("age") - age_before == 2
    assert sorted(p.name for p in (tmp_path / "CAM-S01-A").iterdir()) == [spool.oldest(1)[0].path.name]


@pytest.mark.broker
def test_a_gateway_keeps_frames_while_its_broker_is_away_and_forwards_them_in_order(tmp_path):
    settings = LocalBrokerSettings(port=free_port(), controller_port=free_port())
    broker = LocalKafkaBroker(settings, tmp_path / "kafka")
    broker.start()
    broker.wait_ready()
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(5):
        cv2.imwrite(str(pictures / f"{i}.jpg"), np.full((90, 160, 3), 40 * i, np.uint8))
    config_dir = isolated_config(tmp_path, "spool")
    (config_dir / "cameras.yaml").write_text(yaml.safe_dump({
        "gateway": {"spool_dir": "spool", "spool_max_mb": 50, "spool_max_age_s": 600},
        "cameras": [{"id": "CAM-S01-A", "site_id": "S01", "source": str(pictures), "fps": 4, "width": 160,
                     "height": 90, "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                              "objects": ["person"]}]}]}))
    cfg = load_config(config_dir)
    topic = cfg.topic("frames")
    spool_dir = cfg.data_dir / "spool" / "CAM-S01-A"
    env = dict(os.environ, SHAFTWATCH_CONFIG_DIR=str(config_dir), KAFKA_BOOTSTRAP=broker.bootstrap)

    def on_kafka() -> list[FrameMeta]:
        return [FrameMeta.from_headers(r.headers) for r in
                asyncio.run(read_all(broker.bootstrap, topic, 100_000, timeout=3))]

    gateway = None
    try:
        asyncio.run(ensure_topics(broker.bootstrap, topic_plan(cfg)))
        with open(tmp_path / "gateway.log", "ab") as log:
            gateway = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "gateway", "--ops-port",
                                        str(free_port())], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        wait_for(lambda: len(on_kafka()) >= 8, 60, what="the gateway's first frames")
        broker.kill()  # the link is cut: nothing answers on the broker's port
        cut_at = time.time()
        # Frames pile up on disk (4 a second), the gateway stays up.
        wait_for(lambda: len(list(spool_dir.glob("*.jpg"))) >= 30, 60, interval=1, what="frames spooled on disk")
        assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()[-2000:]
        broker.start()
        broker.wait_ready()
        restored_at = time.time()
        wait_for(lambda: not list(spool_dir.glob("*.jpg")), 120, interval=1, what="the spool forwarded")
        time.sleep(2)  # a few live frames after it
        metas = on_kafka()
    finally:
        if gateway is not None:
            stop_process(gateway, 10)
        broker.stop()

    seqs = [m.seq for m in metas]
    first = {}
    for m in metas:
        first.setdefault(m.seq, m)
    assert sorted(first) == list(range(1, max(seqs) + 1))  # no frame lost
    assert len(seqs) - len(first) <= 4  # at most the frames in flight at the cut written twice
    ordered = [first[s].captured_at for s in sorted(first)]
    assert ordered == sorted(ordered)
    assert [s for s in seqs if seqs.count(s) == 1] == sorted(s for s in seqs if seqs.count(s) == 1)  # capture order
    during = [m for m in first.values() if cut_at + 1 < m.captured_at < restored_at - 1]
    print(f"broker away {restored_at - cut_at:.0f} s; {len(first)} frames, {len(during)} captured meanwhile, "
          f"{len(seqs) - len(first)} written twice")
    # Captured while the broker was away, delivered later with the time they were captured.
    assert len(during) >= 0.8 * 4 * (restored_at - cut_at - 2), (len(during), restored_at - cut_at)
