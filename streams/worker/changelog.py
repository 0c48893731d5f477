"""A Faust table whose changelog is written in batches, when the worker commits offsets.

A plain Faust table sends one changelog record the moment a key is set, each through its
own future, buffer slot and delivery callback. For detector state that is set for every
reading of every meter that costs more than the detection itself (py-spy: two thirds of
the power agent's time). ``BatchedChangelogTable`` keeps the same table, store, changelog
topic and record format — Faust's recovery reads it back unchanged — but only notes which
keys changed. Just before the worker commits its input offsets, ``flush_changelog()``
serialises each changed key once (its latest value) and hands the records to the Kafka
producer as one batch per partition (more when there are more than a batch holds, never
splitting one owner's keys — a meter's state and its buckets — between batches, so a
worker killed mid-write leaves each meter's state and baselines of the same moment). As
Kafka Streams does with its state stores: a meter that reports 96 times during a back-fill
is written once per commit (``broker_commit_interval``), not 96 times.

Why this keeps at-least-once: the state is flushed inside the commit, before the offsets
are committed, and Faust's commit then flushes the producer (``Producer.flush`` waits for
these batches too). So a committed offset always has its state changes in the changelog.
The agent that writes a table changes it only inside ``changing()``, one message at a
time; a flush waits for that message to end, so what it writes is the state between two
messages, never half of one, and it waits until Kafka has acknowledged the outputs sent so
far (streams.worker.outputs says why). A worker killed before a commit replays from the last committed offset on the
state of that commit, or of a later one (the rules take a reading they already hold once).
A batch that still fails after the producer's own retries is recorded, and the next flush
raises it, which stops the commit instead of letting it commit lost state. A rebalance
writes the changes too, before its recovery replays the changelog onto the tables
(``write_changes_on_revoke`` says why).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import faust
from faust.serializers import codecs
from faust.transport.consumer import Consumer

from streams.logs import ids
from streams.worker.outputs import outputs_acknowledged

log = logging.getLogger("shaftwatch.changelog")

# Detector state is written for every record, so its codec is on the hot path: restricted
# pickle writes a meter's state in a fraction of JSON's time, and without Faust's base64
# layer (the changelog is binary) it costs less again. It is internal state written only
# by our agents, and the restricted unpickler refuses anything but plain builtins.
KEY_CODEC = "json"
STATE_CODEC = "shaftwatch-state"
codecs.register(STATE_CODEC, codecs.restricted_pickle())


def encode_entry(key: str, value: Any) -> tuple[bytes, bytes]:
    """A state table entry as its changelog record (key, value) — the bytes Faust's
    recovery reads back. Keys are strings, values plain builtins (dict, list, str, ...)."""
    return codecs.dumps(KEY_CODEC, key), codecs.dumps(STATE_CODEC, value)


# A record's bytes beyond its key and value in a v2 record batch (varints, headers count),
# taken generously; and room left for the batch's own header.
RECORD_OVERHEAD = 24
BATCH_HEADROOM = 1024


def owner_of(key: Any) -> str:
    """What a key belongs to: "M-0001" for "M-0001" and "M-0001/h3-mid" alike."""
    return str(key).split("/", 1)[0]


ENCODE_ON_THREAD_KEYS = 64


def _group_encoded(entries: list[tuple[Any, int, Any]]) -> dict[int, dict[str, list[tuple[bytes, bytes]]]]:
    """(key, partition, value) -> partition -> owner -> encoded records: an owner's keys
    ("M-0001" and "M-0001/h3-mid") go into one record batch, which Kafka appends whole or
    not at all."""
    by_partition: dict[int, dict[str, list[tuple[bytes, bytes]]]] = defaultdict(lambda: defaultdict(list))
    for key, partition, value in entries:
        by_partition[partition][owner_of(key)].append(encode_entry(key, value))
    return by_partition


class ChangelogWriteFailed(RuntimeError):
    """A batch of state changes could not be written to the changelog topic."""


class BatchedChangelogTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_serializer, self.value_serializer = KEY_CODEC, STATE_CODEC
        self._changed: dict[Any, int] = {}  # key -> changelog partition, in order of first change
        self._failure: BaseException | None = None
        self._writing = asyncio.Lock()  # held by the writing agent for a message, and by a flush

    @asynccontextmanager
    async def changing(self):
        """The writing agent's handling of one message: a flush waits until it ends."""
        async with self._writing:
            yield

    def peek(self, key: Any, default: Any = None) -> Any:
        """A key's value read straight from the store, past Faust's per-read hooks (its
        sensors are called on every get): detectors read their state several times per
        record. Writes still go through the table, which notes them for the changelog."""
        try:
            return self.data[key]
        except KeyError:
            return default

    def on_key_set(self, key: Any, value: Any) -> None:
        # The value is read at flush time: a key set many times in one message is written once.
        self._changed[key] = self.partition_for_key(key)

    def on_key_del(self, key: Any) -> None:
        # Deletions are rare; write out what is pending first so the order stays right.
        if self._changed:
            raise RuntimeError(f"table {self.name}: flush_changelog() before deleting a key")
        super().on_key_del(key)

    async def flush_changelog(self) -> int:
        """Write every key changed since the last flush; returns how many were written.
        Called by each offset commit, between two messages of the writing agent (the
        commit holds ``changing()``)."""
        if self._failure is not None:
            raise ChangelogWriteFailed(f"table {self.name}: an earlier changelog batch failed") from self._failure
        if not self._changed:
            return 0
        changed, self._changed = self._changed, {}
        entries = [(key, partition, self.data[key]) for key, partition in changed.items()]
        if len(entries) > ENCODE_ON_THREAD_KEYS:
            # Serialising thousands of keys holds the loop for tens of ms; a thread does it.
            # Nothing writes these values meanwhile: their one writer, the agent, waits for
            # the lock the commit holds.
            by_partition = await asyncio.to_thread(_group_encoded, entries)
        else:
            by_partition = _group_encoded(entries)
        # Faust's producer wraps aiokafka's; its batch interface is what makes this cheap.
        kafka = self.app.producer._ensure_producer()
        limit = self.app.conf.producer_max_batch_size - BATCH_HEADROOM
        for partition, owners in by_partition.items():
            batch, size = kafka.create_batch(), 0
            for records in owners.values():
                group = sum(len(k) + len(v) + RECORD_OVERHEAD for k, v in records)
                if size and size + group > limit:  # the next owner starts a batch of its own
                    await self._send(kafka, batch, partition)
                    batch, size = kafka.create_batch(), 0
                for key_bytes, value_bytes in records:
                    if batch.append(timestamp=None, key=key_bytes, value=value_bytes) is None:
                        # One owner's keys larger than a batch: never in practice (a meter's
                        # state and buckets are a few kB); sent on, not atomic, and logged.
                        log.warning("one owner's changes span record batches",
                                    extra=ids(table=self.name, bytes=group))
                        await self._send(kafka, batch, partition)
                        batch = kafka.create_batch()
                        batch.append(timestamp=None, key=key_bytes, value=value_bytes)
                size += group
            await self._send(kafka, batch, partition)
        return len(changed)

    async def _send(self, kafka, batch, partition: int) -> None:
        delivered = await kafka.send_batch(batch, self.changelog_topic.get_topic_name(), partition=partition)
        delivered.add_done_callback(self._on_batch_delivered)

    def _on_batch_delivered(self, fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._failure = fut.exception()
            log.error("changelog batch failed", extra=ids(table=self.name, error=repr(self._failure)))


# ------------------------------------------------------------------ flushed at each commit

_faust_commit_offsets = Consumer._commit_offsets


async def write_changes(app: faust.App) -> None:
    """Every batched table's changes handed to the producer, with every writing agent
    between two messages and the outputs sent so far acknowledged by Kafka first
    (streams.worker.outputs)."""
    tables = [table for table in app.tables.values() if isinstance(table, BatchedChangelogTable)]
    async with AsyncExitStack() as held:
        for table in tables:  # always in this order; an agent holds only its own table's lock
            await held.enter_async_context(table.changing())
        await outputs_acknowledged()
        for table in tables:
            await table.flush_changelog()


async def _flush_then_commit_offsets(self: Consumer, offsets, start_new_transaction: bool = True) -> bool:
    # Every offset commit of the worker passes here (periodic, on rebalance, on stop), after
    # Faust chose the offsets to commit and before it flushes the producer and commits them.
    await write_changes(self.app)
    return await _faust_commit_offsets(self, offsets, start_new_transaction=start_new_transaction)


async def write_changes_on_revoke(app: faust.App, revoked, **kwargs) -> None:
    """Before a rebalance's recovery: the tables' changes written and acknowledged.

    A commit writes them only when it has offsets to commit, and a rebalance does not always
    bring one (one may already be under way, or nothing new was acknowledged). Recovery
    then replays each kept partition's changelog onto the table in memory: keys the
    changelog has go back to their older value, keys it does not have yet keep the new one
    — a meter's state rewound beside baseline buckets that were not, and the readings
    replayed from the committed offset were learnt twice (tests/cluster/test_faults.py
    found it)."""
    await write_changes(app)
    await app.producer.flush()


def flush_state_at_commit(app: faust.App) -> None:
    """Make every offset commit, and every rebalance, write the batched tables' changes
    first (see the module's docstring). Written against faust-streaming 0.15
    (streams.worker.faust_fixes pins it)."""
    Consumer._commit_offsets = _flush_then_commit_offsets
    app.on_partitions_revoked.connect(write_changes_on_revoke)
