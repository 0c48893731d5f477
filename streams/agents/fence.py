"""Fence agent: consumes ``fence-pings`` (keyed by pseudonymous device id)."""

from __future__ import annotations

from ..app import app
from ..dead_letters import refusing
from ..metrics import RECORDS_ACCEPTED, RECORDS_IN
from ..records import FENCE_PINGS, FencePing, decode
from ..topics import fence_pings_topic

SOURCE = "fence-agent"


@app.agent(fence_pings_topic, name="fence-agent")
async def fence_agent(stream):
    async for event in stream.events():
        RECORDS_IN.labels(topic=FENCE_PINGS.name).inc()
        async with refusing(event, SOURCE):
            decode(FencePing, event.value)
            RECORDS_ACCEPTED.labels(topic=FENCE_PINGS.name).inc()
