"""The kinds of partner data that can be pushed over HTTP, and what a row of each holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from streams.contract.records import Contract, FencePing, MeterReading, field_shapes
from streams.contract.topics import FENCE_PINGS, METER_READINGS
from streams.contract.types import Shape, shape_of


@dataclass(frozen=True)
class Feed:
    """One kind of partner data that can be pushed over HTTP."""

    name: str  # "meters", "fences": matches IngestSource.feed
    path: str
    topic: str  # design topic name (before the config's prefix)
    record: type[Contract]
    rows_key: str  # the list in a JSON body: {"readings": [...]}
    key_name: str  # what the key is, in words
    key_of: Callable[[Contract], str]  # Kafka key of a row
    identity: Callable[[Contract], tuple]  # duplicate rows within one request
    # Row fields that differ from the record's: the clear device id a carrier sends, which
    # becomes the pseudonym before anything is written.
    extra_fields: dict[str, Shape] = field(default_factory=dict)
    server_fields: tuple[str, ...] = ("v", "source_id")

    def row_shapes(self) -> dict[str, Shape]:
        """What a row may hold, field by field: the record's own fields but those the server sets."""
        own = {k: shape for k, shape in field_shapes(self.record).items() if k not in self.server_fields}
        return {**own, **self.extra_fields}


METERS = Feed("meters", "/ingest/meter-readings", METER_READINGS.name, MeterReading, "readings", "meter id",
              key_of=lambda r: r.meter_id, identity=lambda r: (r.meter_id, r.ts))
FENCES = Feed("fences", "/ingest/fence-pings", FENCE_PINGS.name, FencePing, "pings", "device",
              key_of=lambda r: r.device_pid, identity=lambda r: (r.device_pid, r.ts, r.event),
              extra_fields={"device_id": shape_of(str)}, server_fields=("v", "source_id", "device_pid"))
CAMARA_PATH = "/ingest/fence-pings/camara"
