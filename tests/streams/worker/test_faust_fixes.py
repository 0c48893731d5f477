"""streams.worker.faust_fixes on its own: the fetch asks for the partitions active when it
is asked; a seek back to committed offsets also rewinds partitions that never committed
(on the real broker); topic creation finds the controller though the first broker the
worker knows is down. The real case is the worker added while a cluster
node is down in tests/cluster/test_faults.py; whether its metadata still lists the dead
node there depends on timing, so this test pins it down with a stand-in client (a MOCK of
aiokafka's client: node 1 refuses as aiokafka does for a node it cannot reach)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import mode
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import NodeNotReadyError

from streams.worker import faust_fixes
from streams.kafka.producer import KafkaSink


# --------------------------------------------------------------------------- fetch and seek


def test_a_fetch_asks_for_the_partitions_active_when_it_was_asked(monkeypatch):
    """Faust's set of active partitions changes while a fetch waits on the consumer thread;
    aiokafka reads an empty set as "all partitions". The fetch gets a copy, and an empty
    set fetches nothing. (MOCK of Faust's fetch: it records what it was asked for.)"""
    asked = []

    async def faust_getmany(self, active_partitions, timeout):
        asked.append(active_partitions)
        await asyncio.sleep(0)
        return {}

    monkeypatch.setattr(faust_fixes, "_faust_getmany", faust_getmany)
    active = {TopicPartition("changelog", 0)}

    async def main():
        fetch = asyncio.ensure_future(faust_fixes._getmany(None, active, 1.0))
        await asyncio.sleep(0)
        active.clear()  # recovery pauses the changelog it has replayed
        await fetch
        assert await faust_fixes._getmany(None, active, 0.01) == {}
    asyncio.run(main())
    assert asked == [frozenset({TopicPartition("changelog", 0)})]  # once, and not emptied


class StandInConsumerThread:
    """A MOCK of Faust's consumer thread around a real aiokafka consumer: the seek runs
    on this loop instead of the thread's."""

    def __init__(self, consumer, reset: str = "earliest", changelogs: frozenset = frozenset()):
        self.consumer = consumer
        self.app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset),
                                   tables=SimpleNamespace(changelog_topics=changelogs))

    def _ensure_consumer(self):
        return self.consumer

    async def call_thread(self, fn, *args):
        return await fn(*args)


@pytest.mark.broker
def test_a_seek_back_rewinds_a_partition_that_never_committed(kafka_bootstrap):
    """A first start on a backlog: records fetched and then dropped before anything was
    committed are read again after the seek back, from the start of the partition; a
    partition with a committed offset goes back to that offset; a changelog is left alone
    (recovery places it)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"seek-back-{time.time_ns()}"
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    async def main():
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 2, 1)])
        finally:
            await admin.close()
        async with KafkaSink(kafka_bootstrap, "test") as sink:
            for i in range(5):
                for tp in tps:
                    await sink.send(topic, b"k", b"%d" % i, partition=tp.partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"g-{topic}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.commit({tps[1]: 2})

            async def read_to_the_end():  # as a fetch whose records Faust then dropped
                fetched = 0
                while fetched < 5 + 3:
                    fetched += sum(len(v) for v in (await consumer.getmany(*tps, timeout_ms=1000)).values())
                return [await consumer.position(tp) for tp in tps]

            await consumer.seek_to_committed()
            assert await read_to_the_end() == [5, 5]
            committed = await faust_fixes._seek_to_committed(StandInConsumerThread(consumer))
            assert committed == {tps[0]: None, tps[1]: 2}
            assert [await consumer.position(tp) for tp in tps] == [0, 2]

            assert await read_to_the_end() == [5, 5]
            await faust_fixes._seek_to_committed(StandInConsumerThread(consumer, changelogs=frozenset({topic})))
            assert [await consumer.position(tp) for tp in tps] == [5, 2]
        finally:
            await consumer.stop()
    asyncio.run(main())


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
