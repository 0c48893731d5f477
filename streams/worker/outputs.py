"""Outputs of the agents (signals, the fence agent's presences), and the promise that Kafka
has acknowledged them before the state that follows from them is written.

An agent's state changes reach the changelog only at the worker's next offset commit
(streams.worker.changelog), and that commit first waits for every output sent so far
(``outputs_acknowledged``). A worker killed before then replays the messages from the
committed offset on the old state and sends the same outputs again (signal ids are made
from what they say: fusion keeps one). The other way round — state written, signal not yet
delivered — the replay would find the readings already applied and the signal would be lost.
An output that Kafka refused after the producer's retries fails that commit and every one
after it: the worker stops committing rather than lose it. Agents do not wait for each
message's acknowledgement (a message that raised a signal used to hold its agent for a
broker round trip).
"""

from __future__ import annotations

import asyncio

# Outputs sent and not yet acknowledged, or refused: a delivered one leaves the set by itself.
_unacknowledged: set[asyncio.Future] = set()


def _settled(delivery: asyncio.Future) -> None:
    if not delivery.cancelled() and delivery.exception() is None:
        _unacknowledged.discard(delivery)


async def send_outputs(topic, messages) -> None:
    """Send (key, value) messages to a Faust topic; the next offset commit waits until Kafka
    has acknowledged them (the module's docstring says why)."""
    for key, value in messages:
        delivery = await topic.send(key=key, value=value)
        _unacknowledged.add(delivery)
        delivery.add_done_callback(_settled)


async def outputs_acknowledged() -> None:
    """Return once Kafka has acknowledged every output sent so far; raise if one was refused."""
    if _unacknowledged:
        await asyncio.gather(*list(_unacknowledged))
