"""Power agent: consumes ``meter-readings`` (keyed by meter id)."""

from __future__ import annotations

from ..app import app, config
from ..dead_letters import refusing
from ..metrics import RECORDS_ACCEPTED, RECORDS_IN
from ..records import METER_READINGS, MeterReading, RecordError, decode
from ..tables import meter_activity, touch
from ..topics import meter_readings_topic

SOURCE = "power-agent"
_known_meters = {m.id for m in config.meters.meters}


def accept_reading(raw: bytes | None) -> MeterReading:
    """Decode and check one reading against the contract and the configured meters."""
    reading = decode(MeterReading, raw)
    if reading.meter_id not in _known_meters:
        raise RecordError(f"unknown meter {reading.meter_id!r} (not in meters.yaml)")
    return reading


@app.agent(meter_readings_topic, name="power-agent")
async def power_agent(stream):
    async for event in stream.events():
        RECORDS_IN.labels(topic=METER_READINGS.name).inc()
        async with refusing(event, SOURCE):
            reading = accept_reading(event.value)
            RECORDS_ACCEPTED.labels(topic=METER_READINGS.name).inc()
            touch(meter_activity, reading.meter_id, reading.ts)
