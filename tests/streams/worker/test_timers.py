"""Worker timers: a running worker applies a good thresholds.yaml and refuses a bad one."""

from __future__ import annotations

import asyncio

import pytest

from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import WorkerProcess, counter, isolated_config, wait_for

pytestmark = pytest.mark.broker


def test_a_running_worker_applies_good_thresholds_and_refuses_bad_ones(kafka_bootstrap, tmp_path):
    config_dir = isolated_config(tmp_path, "reload", config_reload_s=0.5)
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        path = config_dir / "thresholds.yaml"
        good = path.read_text()
        path.write_text(good.replace("  dwell_s: 300", "  dwell_s: later"))
        refused = wait_for(lambda: worker.get("/health")["config"]["refused"], 30, what="the bad edit refused")
        assert "fence.dwell_s" in refused[0] and worker.get("/health")["status"] == "ok"
        path.write_text(good.replace("  dwell_s: 300", "  dwell_s: 600"))
        wait_for(lambda: not worker.get("/health")["config"]["refused"], 30, what="the good edit applied")
        assert counter(worker, 'shaftwatch_config_reloads_total{result="applied"}') == 1
    finally:
        worker.stop()
