"""The topics of the design: each one's name (before a deployment's prefix), what its key
and value are, and whether it is compacted. ``streams.kafka.admin`` creates them with
their settings; ``streams.worker.topics`` declares them on the Faust app."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the message key is
    value: str  # what the message value is
    compacted: bool = False


FRAMES = TopicSpec("frames", "camera id", "raw JPEG bytes; FrameMeta in the headers")
METER_READINGS = TopicSpec("meter-readings", "meter id", "MeterReading or MeterReadingBatch (JSON)")
FENCE_PINGS = TopicSpec("fence-pings", "pseudonymous device id", "FencePing or FencePingBatch (JSON)")
FENCE_PRESENCE = TopicSpec("fence-presence", "fence zone id",
                           "FencePresenceBatch (JSON): one zone's counted visits from one fence-pings message")
SIGNALS = TopicSpec("signals", "site id", "Signal (JSON)")
ALERTS = TopicSpec("alerts", "incident id", "Incident (JSON), latest state per incident", compacted=True)
DEAD_LETTERS = TopicSpec("dead-letters", "source topic", "DeadLetter (JSON): original bytes, source, reason")

TOPICS: tuple[TopicSpec, ...] = (FRAMES, METER_READINGS, FENCE_PINGS, FENCE_PRESENCE, SIGNALS, ALERTS, DEAD_LETTERS)
