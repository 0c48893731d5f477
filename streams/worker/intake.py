"""What agents take in: counted, decoded row by row, and refused to ``dead-letters``.

Agents process each event inside ``refusing(event, source)``: a record that breaks the
contract (RecordError) or that a bug fails on (any other exception) is sent to
dead-letters with its original bytes, the source and the reason, and the agent goes on
with the next record. Nothing that was read is silently dropped, and one bad record
never stops a stream.

Every agent counts the same unit: an item is one reading, ping, presence, frame or
signal (a batch message counts its rows; a message that cannot be read at all counts as
one). ``shaftwatch_records_in_total`` counts the items read as an agent takes them, and
``shaftwatch_records_accepted_total`` those that met the contract, once the agent has
processed them; what met neither went to dead-letters (``shaftwatch_dead_letters_total``).
``shaftwatch_records_last_accepted_timestamp_seconds`` says when an agent last finished
items of a topic: a feed that goes quiet shows there first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Callable, TypeVar

from faust.types import EventT

from streams.contract.decoding import decode_message
from streams.contract.records import Contract, DeadLetter, RecordError
from streams.logs import ids
from streams.metrics import DEAD_LETTERS_TOTAL, RECORDS_ACCEPTED_TOTAL, RECORDS_IN_TOTAL, RECORDS_LAST_ACCEPTED
from streams.worker.app import config
from streams.worker.topics import dead_letters_topic

log = logging.getLogger("shaftwatch.intake")

R = TypeVar("R", bound=Contract)
# A batch message is parsed and checked row by row on a thread, not on the worker's event
# loop (500 readings take about 10 ms); a small one is not worth the hand-over.
DECODE_ON_THREAD_BYTES = 16_384
_PREFIX = config.runtime.app.topics.prefix


def _topic(event: EventT) -> str:
    """The design topic an event came from (metrics are labelled without the deployment's prefix)."""
    return event.message.topic.removeprefix(_PREFIX)


def count_in(event: EventT, items: int = 1) -> None:
    RECORDS_IN_TOTAL.labels(topic=_topic(event)).inc(items)


def count_accepted(event: EventT, items: int = 1) -> None:
    if items:
        topic = _topic(event)
        RECORDS_ACCEPTED_TOTAL.labels(topic=topic).inc(items)
        RECORDS_LAST_ACCEPTED.labels(topic=topic).set(time.time())


async def dead_letter(event: EventT, source: str, reason: str) -> None:
    """Refuse one Kafka event. Its bytes are kept exactly as read, so it can be replayed."""
    message = event.message
    letter = DeadLetter.of(
        source=source,
        reason=reason,
        value=message.value,
        key=message.key,
        headers=list(message.headers or []),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )
    await dead_letters_topic.send(key=message.topic, value=letter)
    DEAD_LETTERS_TOTAL.labels(source=source, topic=message.topic).inc()
    log.warning("record refused", extra=ids(source=source, topic=message.topic, partition=message.partition,
                                            offset=message.offset, reason=reason))


async def accepted_rows(event: EventT, source: str, what: str, record: type[R],
                        check: Callable[[R], None]) -> list[R]:
    """The rows of one message (a ``record`` or a batch of them) worth processing; all of
    them counted in. Each row the decoder refuses, and each row ``check(row)`` refuses with a
    RecordError, is dead-lettered on its own with its reason: one bad row does not cost the
    others. A message that cannot be read at all raises RecordError (``refusing``
    dead-letters it). The agent counts the kept rows accepted once it has processed them."""
    try:
        if len(event.value or b"") > DECODE_ON_THREAD_BYTES:
            rows, bad = await asyncio.to_thread(decode_message, record, event.value)
        else:
            rows, bad = decode_message(record, event.value)
    except RecordError:
        count_in(event)
        raise
    count_in(event, len(rows) + len(bad))
    for index, reason in bad:
        await dead_letter(event, source, f"{what} {index}: {reason}")
    kept = []
    for row in rows:
        try:
            check(row)
        except RecordError as exc:
            await dead_letter(event, source, str(exc))
            continue
        kept.append(row)
    return kept


@asynccontextmanager
async def refusing(event: EventT, source: str):
    """Run the body for one event; on failure dead-letter it and carry on."""
    try:
        yield
    except RecordError as exc:
        await dead_letter(event, source, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the stream; it is logged in full
        log.exception("processing failed", extra=ids(source=source, topic=event.message.topic,
                                                      offset=event.message.offset))
        await dead_letter(event, source, f"internal error while processing: {exc!r}")
