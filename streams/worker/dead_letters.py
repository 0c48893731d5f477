"""Sending refused input to ``dead-letters``: the original bytes, the source, the reason.

Agents process each event inside ``refusing(event, source)``: a record that breaks the
contract (RecordError) or that a bug fails on (any other exception) is sent to
dead-letters with the reason, and the agent goes on with the next record. Nothing that
was read is silently dropped, and one bad record never stops a stream.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from faust.types import EventT

from streams.contract.records import DeadLetter, RecordError
from streams.logs import ids
from streams.metrics import DEAD_LETTERS
from streams.worker.topics import dead_letters_topic

log = logging.getLogger("shaftwatch.dead_letters")


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
    DEAD_LETTERS.labels(source=source, topic=message.topic).inc()
    log.warning("record refused", extra=ids(source=source, topic=message.topic, partition=message.partition,
                                            offset=message.offset, reason=reason))


async def keep_valid(event: EventT, source: str, what: str, rows: list, bad: list[tuple[int, str]],
                     check) -> list:
    """The rows of one batch message worth processing. Each row the decoder refused
    (``bad``: index, reason) and each row ``check(row)`` refuses with a RecordError is
    dead-lettered on its own, with its reason; one bad row does not cost the others."""
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
