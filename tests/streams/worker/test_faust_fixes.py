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
