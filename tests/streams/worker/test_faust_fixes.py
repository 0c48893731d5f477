"""streams.worker.faust_fixes on its own: topic creation finds the controller though the
first broker the worker knows is down. The real case is the worker added while a cluster
node is down in tests/cluster/test_faults.py; whether its metadata still lists the dead
node there depends on timing, so this test pins it down with a stand-in client (a MOCK of
aiokafka's client: node 1 refuses as aiokafka does for a node it cannot reach)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import mode
import pytest
from aiokafka.errors import NodeNotReadyError

from streams.worker import faust_fixes


class StandInClient:
    """A MOCK of AIOKafkaClient: three brokers known, node 1 down, the others answer that
    node 3 is the controller."""

    def __init__(self, down: set[int]):
        self.down = down
        self.asked: list[int] = []
        self.cluster = SimpleNamespace(brokers=lambda: [SimpleNamespace(nodeId=i) for i in (1, 2, 3)])

    async def send(self, node_id, request):
        self.asked.append(node_id)
        if node_id in self.down:
            raise NodeNotReadyError(f"Attempt to send a request to node which is not ready (node id {node_id}).")
        return SimpleNamespace(controller_id=3)


def ask(client) -> int:
    async def main():
        owner = mode.Service()
        return await faust_fixes._get_controller_node(None, owner, client, timeout=5)
    return asyncio.run(main())


def test_the_controller_is_asked_of_the_next_broker_when_the_first_is_down():
    client = StandInClient(down={1})
    assert ask(client) == 3
    assert client.asked == [1, 2]


def test_no_broker_answering_is_an_error_that_names_them():
    with pytest.raises(RuntimeError, match=r"no Kafka broker answered.*1: .*NodeNotReadyError.*3: "):
        ask(StandInClient(down={1, 2, 3}))


def test_a_topic_declared_while_a_node_is_still_named_is_tried_again(monkeypatch):
    """A live broker may name the dead node as controller until its session times out: the
    declaration fails with a retriable error, and is tried again on fresh metadata."""
    calls = []

    async def flaky_create_topic(self, owner, client, topic, partitions, replication, **kwargs):
        calls.append(topic)
        if len(calls) < 3:
            raise NodeNotReadyError("Attempt to send a request to node which is not ready (node id 1).")

    class Refreshing(StandInClient):
        refreshed = 0

        async def force_metadata_update(self):
            Refreshing.refreshed += 1
            return True

    monkeypatch.setattr(faust_fixes, "_faust_create_topic", flaky_create_topic)

    async def main():
        await faust_fixes._create_topic(None, mode.Service(), Refreshing(down=set()), "t", 1, 3)
    asyncio.run(main())
    assert calls == ["t", "t", "t"] and Refreshing.refreshed == 2


def test_a_lasting_failure_to_declare_still_ends_in_its_error(monkeypatch):
    async def never(self, owner, client, topic, partitions, replication, **kwargs):
        raise NodeNotReadyError("node 1 down")

    class Refreshing(StandInClient):
        async def force_metadata_update(self):
            return True

    monkeypatch.setattr(faust_fixes, "_faust_create_topic", never)
    monkeypatch.setattr(faust_fixes, "CREATE_TOPIC_RETRY_S", 1.0)
    with pytest.raises(NodeNotReadyError):
        asyncio.run(faust_fixes._create_topic(None, mode.Service(), Refreshing(down=set()), "t", 1, 3))
