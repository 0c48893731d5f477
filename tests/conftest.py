"""One real Kafka broker for the whole test session (or the cluster in KAFKA_BOOTSTRAP), and,
for the tests marked ``cluster``, one local three-node cluster shared by them all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streams.config import LocalBrokerSettings
from streams.ops.local_broker import LocalKafkaBroker, LocalKafkaCluster
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
def _session_cluster(tmp_path_factory) -> LocalKafkaCluster:
    # Started by the first test that asks for it; 3 JVMs of 384 MB heap each.
    settings = LocalBrokerSettings(heap_mb=384)
    ports = [(free_port(), free_port()) for _ in range(3)]
    with LocalKafkaCluster(settings, Path(tmp_path_factory.mktemp("kafka-cluster")), 3, ports) as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster(_session_cluster) -> LocalKafkaCluster:
    """Three KRaft nodes on loopback ports (replication 3, min.insync.replicas 2), one for the
    session. A test may kill and restart nodes; afterwards every node runs again and every
    partition is back in sync before the next test starts."""
    yield _session_cluster
    for index, node in enumerate(_session_cluster.nodes):
        if not node.running():
            _session_cluster.restart(index)
    _session_cluster.wait_in_sync()


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
        if "kafka_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
