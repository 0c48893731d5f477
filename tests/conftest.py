"""One real Kafka broker for the whole test session (or the cluster in KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.broker import LocalKafkaBroker, free_port
from streams.config import LocalBrokerSettings


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    configured = os.environ.get("KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    settings = LocalBrokerSettings(port=free_port(), controller_port=free_port())
    broker = LocalKafkaBroker(settings, Path(tmp_path_factory.mktemp("kafka")))
    with broker:
        yield broker.bootstrap


def pytest_collection_modifyitems(items):
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
