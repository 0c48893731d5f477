"""The one way agents send evidence: Signal records to ``signals`` keyed by site, counted
and logged, and acknowledged by Kafka before the agent goes on.

Why acknowledged: an agent sends a message's outputs before it writes that message's state
changes to the changelog. A worker killed in between then replays the message from the
committed offset on the old state and sends the same outputs again (signal ids are made
from what they say: fusion keeps one). The other way round — state written, signal not yet
delivered — the replay would find the readings already applied and the signal would be lost.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from streams.contract.decoding import encode
from streams.contract.records import Signal
from streams.logs import ids
from streams.worker.topics import signals_topic

log = logging.getLogger("shaftwatch.signals")
SIGNALS_TOTAL = Counter("shaftwatch_signals_total", "Signals emitted", ["source_kind", "kind"])


async def send_acknowledged(topic, messages) -> None:
    """Send (key, value) messages to a Faust topic and return once Kafka has acknowledged
    every one (the module's docstring says why agents wait)."""
    delivered = [await topic.send(key=key, value=value) for key, value in messages]
    if delivered:
        await asyncio.gather(*delivered)


async def emit(signals: list[Signal]) -> None:
    # Encoded by the contract's own encoder and sent as bytes, the form the fusion agent
    # reads; one declared topic for both sides.
    await send_acknowledged(signals_topic, [(signal.site_id.encode(), encode(signal)) for signal in signals])
    logging_signals = log.isEnabledFor(logging.INFO)
    for signal in signals:
        SIGNALS_TOTAL.labels(source_kind=signal.source_kind, kind=signal.kind).inc()
        if logging_signals:
            log.info("signal", extra=ids(site_id=signal.site_id, source_kind=signal.source_kind,
                                         source_id=signal.source_id, kind=signal.kind, signal_id=signal.signal_id,
                                         strength=signal.strength, summary=signal.summary))
