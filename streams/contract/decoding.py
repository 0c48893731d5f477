"""How bytes become records, strictly, and records become bytes.

``decode`` refuses, with the reason in words, unknown fields, missing fields, wrong types,
an unsupported schema version and the record's own domain rules. ``decode_message`` reads
a message that holds one record or a batch of them, refusing bad rows one by one.
``encode`` and ``encode_batch`` are the only ways records are written.
"""

from __future__ import annotations

import functools
import json
import typing
from typing import Any

from streams.contract.records import (
    SCHEMA_VERSION, Contract, FencePing, FencePingBatch, FencePresence, FencePresenceBatch, MeterReading,
    MeterReadingBatch, RecordError, field_shapes,
)

R = typing.TypeVar("R", bound=Contract)

# A record that may also travel as a batch: its batch record and the batch's list of rows.
# Each row is the record without the batch's shared fields (v, source_id, ...).
BATCHES: dict[type[Contract], tuple[type[Contract], str]] = {
    MeterReading: (MeterReadingBatch, "readings"),
    FencePing: (FencePingBatch, "pings"),
    FencePresence: (FencePresenceBatch, "presences"),
}


@functools.cache
def _fitters(cls: type[Contract]) -> dict[str, typing.Callable[[Any], bool]]:
    return {name: shape.fits for name, shape in field_shapes(cls).items()}


@functools.cache
def _required(cls: type[Contract]) -> frozenset[str]:
    return frozenset(k for k in field_shapes(cls) if k not in cls._options.defaults)


@functools.cache
def _defaults(cls: type[Contract]) -> dict[str, Any]:
    return dict(cls._options.defaults)


def _checked_record(cls: type[R], data: dict[str, Any]) -> R:
    """The record of fields decode() has just checked, set directly. Faust's generated
    __init__ passes each value through its field descriptor, which for these plain JSON
    types (no coercion, no tags) returns it unchanged, and that cost more than all the
    checks together. test_records keeps the two ways equal for every record type."""
    record = cls.__new__(cls)
    fields = record.__dict__
    fields.update(_defaults(cls))
    fields.update(data)
    fields["__evaluated_fields__"] = set()
    record.__post_init__()
    return record


def parse_json(raw: bytes | str | None) -> Any:
    if not raw:
        raise RecordError("empty message")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"not JSON: {exc}") from None


def decode(cls: type[R], raw: bytes | str | dict | None) -> R:
    """Bytes (or a parsed dict) to a record, or RecordError saying what is wrong."""
    data = raw if isinstance(raw, dict) else parse_json(raw)
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {type(data).__name__}")
    shapes, fits, required = field_shapes(cls), _fitters(cls), _required(cls)
    if not (data.keys() <= fits.keys() and required <= data.keys()):
        unknown = sorted(set(data) - set(shapes))
        if unknown:
            raise RecordError(f"unknown fields: {', '.join(unknown)}")
        raise RecordError(f"missing fields: {', '.join(sorted(required - data.keys()))}")
    if data.get("v") != SCHEMA_VERSION:
        raise RecordError(f"schema version v={data.get('v')!r} is not supported (this system speaks v={SCHEMA_VERSION})")
    for name, value in data.items():
        if not fits[name](value):  # the fast yes/no; the shape says why
            raise RecordError(shapes[name].problem(name, value) or f"{name}: {value!r} does not fit")
    record = _checked_record(cls, data)
    problems = record.problems()
    if problems:
        raise RecordError("; ".join(problems))
    return record


def encode(record: Contract) -> bytes:
    return json.dumps(record.asdict(), ensure_ascii=False, separators=(",", ":")).encode()


def decode_message(record: type[R], raw: bytes | None) -> tuple[list[R], list[tuple[int, str]]]:
    """A message holding one ``record`` or a batch of them -> good records, (index, reason)
    of bad rows. The envelope is checked as a whole; each row on its own, so one bad row
    does not cost the good ones."""
    batch, rows_key = BATCHES[record]
    data = parse_json(raw)
    if not (isinstance(data, dict) and rows_key in data):
        return [decode(record, data)], []
    items = data[rows_key]
    if not isinstance(items, list):
        raise RecordError(f"{rows_key}: expected a list, got {items!r:.40}")
    envelope = decode(batch, {**data, rows_key: []})
    shared = {name: getattr(envelope, name) for name in field_shapes(batch) if name != rows_key}
    good, bad = [], []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise RecordError(f"expected a JSON object, got {type(item).__name__}")
            if shared.keys() & item.keys():
                raise RecordError(f"{' and '.join(shared)} belong to the batch, not to its {rows_key}")
            good.append(decode(record, {**shared, **item}))
        except RecordError as exc:
            bad.append((index, str(exc)))
    return good, bad


def encode_batch(record: type[Contract], shared: dict[str, Any], rows: list[Contract]) -> bytes:
    """Rows of ``record`` as one batch message: ``shared`` holds the batch's own fields
    (v is added), each row loses them."""
    batch, rows_key = BATCHES[record]
    envelope = {"v": SCHEMA_VERSION, **shared}
    items = [{k: v for k, v in row.asdict().items() if k not in envelope} for row in rows]
    return encode(batch(**envelope, **{rows_key: items}))
