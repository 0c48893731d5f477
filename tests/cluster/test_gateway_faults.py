"""A camera gateway on the three-node cluster carries on through the loss of the Kafka node
that leads its camera's partition: the process stays up, frames keep arriving once the
partition has a new leader, and no frame is written twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import yaml

from streams.config import load_config
from streams.contract.frames import FrameMeta
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from streams.ops.processes import stop_process
from tests.cluster.test_faults import leader_of
from tests.helpers import REPO, free_port, isolated_config, read_all, wait_for


def frames_on_kafka(bootstrap: str, topic: str) -> list[FrameMeta]:
    records = asyncio.run(read_all(bootstrap, topic, 100_000, timeout=3))
    return [FrameMeta.from_headers(r.headers) for r in records]


def last_seq(bootstrap: str, topic: str) -> int:
    """The newest frame's number on Kafka (0 while the partition cannot be read: a node is
    down and its leadership has not moved yet)."""
    return max((m.seq for m in frames_on_kafka(bootstrap, topic)), default=0)


def test_a_camera_gateway_carries_on_through_a_lost_node(kafka_cluster, tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(5):
        cv2.imwrite(str(pictures / f"{i}.jpg"), np.full((90, 160, 3), 40 * i, np.uint8))
    config_dir = isolated_config(tmp_path, "gateway", partitions=4, app={"topics": {"replication": 3}})
    (config_dir / "cameras.yaml").write_text(yaml.safe_dump({"cameras": [{
        "id": "CAM-S01-A", "site_id": "S01", "source": str(pictures), "fps": 4, "width": 160, "height": 90,
        "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "objects": ["person"]}]}]}))
    cfg = load_config(config_dir)
    bootstrap = kafka_cluster.bootstrap
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg)))
    topic = cfg.topic("frames")
    env = dict(os.environ, SHAFTWATCH_CONFIG_DIR=str(config_dir), KAFKA_BOOTSTRAP=bootstrap)
    with open(tmp_path / "gateway.log", "ab") as log:
        gateway = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "gateway", "--ops-port",
                                    str(free_port())], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for(lambda: len(frames_on_kafka(bootstrap, topic)) >= 8, 60, what="the gateway's first frames")
        leader = asyncio.run(leader_of(bootstrap, topic, partition_for("CAM-S01-A", 4)))
        node = next(i for i, n in enumerate(kafka_cluster.nodes) if n.node_id == leader)
        before = last_seq(bootstrap, topic)
        kafka_cluster.nodes[node].kill()
        # With its leader gone the partition moves to another node; the gateway follows it.
        wait_for(lambda: last_seq(bootstrap, topic) >= before + 20, 90, what="frames again while the node is down")
        kafka_cluster.restart(node)
        after = last_seq(bootstrap, topic)
        wait_for(lambda: last_seq(bootstrap, topic) >= after + 8, 60, what="frames after the node came back")
        assert gateway.poll() is None, "the gateway exited"
        seqs = [m.seq for m in frames_on_kafka(bootstrap, topic)]
        assert len(seqs) == len(set(seqs)), "a frame was written twice"
        times = sorted(m.captured_at for m in frames_on_kafka(bootstrap, topic))
        assert times[-1] - times[0] < 600 and times[-1] <= time.time()
    finally:
        stop_process(gateway, 20)
