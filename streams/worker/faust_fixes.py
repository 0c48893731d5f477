"""Workarounds for faust-streaming bugs that lose or stall records. Each names its
upstream issue and the test that shows it; remove one when a release fixes it.

Recovery end drops fetched records (faust-streaming/faust#596, open). Three faults meet
here; a restarted worker with real state and a backlog hits them (tests/streams/worker/
test_tables.py::test_a_backlog_after_a_long_recovery_is_processed_whole):
- ``Recovery.on_recovery_completed`` resumes the input partitions, then seeks them to their
  committed offsets, then resumes flow control — and resuming flow control clears every
  stream queue: records fetched while the seek was in flight are dropped, their read
  offsets already advanced, and the offset commit stops at the gap for good.
- The fetcher hands Faust's live set of active partitions to aiokafka's fetcher, which
  reads it later, on the consumer's thread; an empty set there means "every partition".
  When recovery pauses the changelogs it has replayed, the set empties while a fetch is
  pending, and that fetch returns the input partitions' records, which Faust then drops as
  not active — with aiokafka's position already past them.
- The seek that should undo such drops ("seek to committed") does nothing for a partition
  whose group has never committed: a first start on a backlog, a new partition.
The fixes: the fetch gets a copy of the active set taken when it is asked for, and none
when that is empty; the seek sends a partition without a committed offset to where a new
consumer group starts (``consumer_auto_offset_reset``, earliest by default); recovery
seeks the input partitions before it resumes them, and clears the queues before that, so
nothing fetched after the seek can be cleared and nothing is fetched twice.

Topic creation asks only the first broker it knows (faust-streaming's
``Transport._get_controller_node``, as in robinhood/faust#165). A worker started while that
node is down dies declaring its topics with NodeNotReadyError, though two nodes of three
are up (tests/cluster/test_faults.py, the worker added during the broker fault). The fix
asks each known broker in turn and takes the controller from the first that answers; and
since a live broker may still name the dead node as controller for a few seconds (until
its session times out), a retriable Kafka error while declaring a topic is retried with
fresh metadata for up to a minute, as ``kafka.admin.ensure_topics`` does, instead of
ending the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import faust
from aiokafka.errors import KafkaError
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_PINNED = "0.15"  # the Faust minor version this was written against (pyproject pins it)


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    await asyncio.gather(*(table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
                           for table in self.tables.values()))
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}")
        return
    inputs = {tp for tp in assignment if not self._is_changelog_tp(tp)}
    if assignment:
        # Nothing of the input partitions is fetched while they are paused, so after this
        # seek each is read from its committed offset (or where a new group starts), once.
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    # Clears the stream queues now, while nothing of the input partitions can be in them.
    self.app.flow_control.resume()
    consumer.resume_flow()
    consumer.resume_partitions(inputs)
    self.completed.set()
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _get_controller_node(self, owner, client, timeout: int = 30000):
    request = (faust_aiokafka.MetadataRequest_v1([]) if faust_aiokafka._AIOKAFKA_HAS_API_VERSION
               else faust_aiokafka.MetadataRequest([]))
    unreachable = []
    for node_id in [broker.nodeId for broker in client.cluster.brokers()]:
        if node_id is None:
            raise faust_aiokafka.NotReady("Not connected to Kafka Broker")
        try:
            wait_result = await owner.wait(client.send(node_id, request), timeout=timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:  # that node is down: ask the next
            unreachable.append(f"{node_id}: {exc!r}")
            continue
        if wait_result.stopped:
            owner.log.info("Shutting down - skipping creation.")
            return None
        return wait_result.result.controller_id
    raise RuntimeError(f"no Kafka broker answered for the controller ({'; '.join(unreachable) or 'none known'})")


_faust_create_topic = faust_aiokafka.Transport._create_topic
CREATE_TOPIC_RETRY_S = 60.0


async def _create_topic(self, owner, client, topic: str, partitions: int, replication: int, **kwargs) -> None:
    deadline = time.monotonic() + CREATE_TOPIC_RETRY_S
    delay = 0.5
    while True:
        try:
            return await _faust_create_topic(self, owner, client, topic, partitions, replication, **kwargs)
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() + delay > deadline or owner.should_stop:
                raise
            owner.log.warning(f"Declaring topic {topic!r} failed ({exc!r}); retrying in {delay:.1f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        with contextlib.suppress(KafkaError):
            await client.force_metadata_update()


async def _getmany(self: AIOKafkaConsumerThread, active_partitions, timeout: float):
    # A copy, taken now: Faust's own set changes as partitions are paused and resumed, and
    # aiokafka reads it later on the consumer thread, where an empty set means "all".
    if active_partitions is not None:
        active_partitions = frozenset(active_partitions)
        if not active_partitions:
            await asyncio.sleep(min(timeout, 0.1))
            return {}
    return await _faust_getmany(self, active_partitions, timeout)


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> dict:
    return await self.call_thread(_seek_to_committed_on_thread, self)


async def _seek_to_committed_on_thread(self: AIOKafkaConsumerThread) -> dict:
    consumer = self._ensure_consumer()
    committed = await consumer.seek_to_committed()
    if self.app.conf.consumer_auto_offset_reset == "earliest":
        # aiokafka seeks only where an offset above 0 was committed; the rest stay wherever
        # an earlier fetch left them, past records Faust may have dropped.
        never = [tp for tp, offset in committed.items()
                 if not offset and tp.topic not in self.app.tables.changelog_topics]
        if never:
            await consumer.seek_to_beginning(*never)
    return committed


_faust_getmany = AIOKafkaConsumerThread.getmany


def apply() -> None:
    if not faust.__version__.startswith(_PINNED + "."):
        raise RuntimeError(f"streams.worker.faust_fixes was written for faust-streaming {_PINNED}.x, found "
                           f"{faust.__version__}: check whether faust-streaming/faust#596 is fixed, then update it")
    Recovery.on_recovery_completed = _on_recovery_completed
    AIOKafkaConsumerThread.getmany = _getmany
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    faust_aiokafka.Transport._get_controller_node = _get_controller_node
    faust_aiokafka.Transport._create_topic = _create_topic
