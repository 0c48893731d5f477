"""One real Kafka broker for the whole test session (or the cluster in KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streams.config import LocalBrokerSettings
from streams.ops.local_broker import LocalKafkaBroker
from tests.helpers import free_port


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


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """A real PostgreSQL server for the session (skipped with the reason where it cannot run)."""
    import tempfile

    from tests.postgres import PostgresServer

    # Its own directory under /tmp, readable by the postgres user the server runs as.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="shaftwatch-pg-")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def pytest_collection_modifyitems(items):
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
