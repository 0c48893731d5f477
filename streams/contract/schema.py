"""The published JSON Schema of each record (``shaftwatch schemas`` writes them to
streams/schemas/ for partners)."""

from __future__ import annotations

from typing import Any

from streams.contract.records import (
    SCHEMA_VERSION, Contract, DeadLetter, FencePing, FencePingBatch, FencePresence, FencePresenceBatch, Incident,
    MeterReading, MeterReadingBatch, Signal, field_shapes,
)


def json_schema(cls: type[Contract]) -> dict[str, Any]:
    shapes = field_shapes(cls)
    properties = {name: shape.json() for name, shape in shapes.items()}
    properties["v"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"shaftwatch/{cls.__name__}.v{SCHEMA_VERSION}.json",
        "title": cls.__name__,
        "description": (cls.__doc__ or "").strip(),
        "type": "object",
        "properties": properties,
        "required": [k for k in shapes if k not in cls._options.defaults],
        "additionalProperties": False,
    }


PUBLISHED_RECORDS: tuple[type[Contract], ...] = (MeterReading, MeterReadingBatch, FencePing, FencePingBatch, FencePresence,
                                                 FencePresenceBatch, Signal, Incident, DeadLetter)
