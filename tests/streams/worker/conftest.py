"""A real worker process on the session's broker, with topics of its own."""

from __future__ import annotations

import asyncio

import pytest

from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import WorkerProcess, isolated_config


@pytest.fixture
def worker_env(kafka_bootstrap, tmp_path):
    config_dir = isolated_config(tmp_path, "worker")
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield cfg, start
    for worker in workers:
        worker.stop()
