"""Every topic of the design, declared on the app with the types of streams.contract.

Input topics (frames, meter-readings, fence-pings, fence-presence) carry raw bytes: agents decode them
with streams.contract.decoding, so that a malformed record reaches dead-letters with its
original bytes and a reason instead of crashing a deserializer.
"""

from __future__ import annotations

from streams.contract.records import DeadLetter, Incident
from streams.contract.topics import ALERTS, DEAD_LETTERS, FENCE_PINGS, FENCE_PRESENCE, FRAMES, METER_READINGS, SIGNALS
from streams.worker.app import PARTITIONS, app, config


def _raw(name: str):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=PARTITIONS)


frames_topic = _raw(config.topic(FRAMES.name))
meter_readings_topic = _raw(config.topic(METER_READINGS.name))
fence_pings_topic = _raw(config.topic(FENCE_PINGS.name))
fence_presence_topic = _raw(config.topic(FENCE_PRESENCE.name))
# Signals go as bytes both ways: agents send encode(signal); the fusion agent reads them like
# every input, to refuse a malformed one with a reason.
signals_topic = _raw(config.topic(SIGNALS.name))
alerts_topic = app.topic(config.topic(ALERTS.name), key_type=str, value_type=Incident, partitions=PARTITIONS, compacting=True)
dead_letters_topic = app.topic(config.topic(DEAD_LETTERS.name), key_type=str, value_type=DeadLetter, partitions=PARTITIONS)
