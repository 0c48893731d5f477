"""The one way agents send evidence: Signal records to ``signals`` keyed by site, counted
and logged, sent as outputs (streams.worker.outputs: acknowledged before the state that
follows from them is written).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from streams.contract.decoding import encode
from streams.contract.records import Signal
from streams.logs import ids
from streams.worker.outputs import send_outputs
from streams.worker.topics import signals_topic

log = logging.getLogger("shaftwatch.signals")
SIGNALS_TOTAL = Counter("shaftwatch_signals_total", "Signals emitted", ["source_kind", "kind"])


async def emit(signals: list[Signal]) -> None:
    # Encoded by the contract's own encoder and sent as bytes, the form the fusion agent
    # reads; one declared topic for both sides.
    await send_outputs(signals_topic, [(signal.site_id.encode(), encode(signal)) for signal in signals])
    logging_signals = log.isEnabledFor(logging.INFO)
    for signal in signals:
        SIGNALS_TOTAL.labels(source_kind=signal.source_kind, kind=signal.kind).inc()
        if logging_signals:
            log.info("signal", extra=ids(site_id=signal.site_id, source_kind=signal.source_kind,
                                         source_id=signal.source_id, kind=signal.kind, signal_id=signal.signal_id,
                                         strength=signal.strength, summary=signal.summary))
