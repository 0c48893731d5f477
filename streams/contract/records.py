"""The contract: topic names, record schemas and how bytes become records.

Everything that crosses Kafka is defined here and nowhere else. A change to a record is
a change to every producer and consumer in the same commit, and bumps SCHEMA_VERSION
when it is not backward compatible. ``shaftwatch schemas`` writes the JSON Schema of
every record to ``streams/schemas/`` for partners (utilities, carriers) to read.

Conventions: timestamps are UTC epoch seconds (float) from the source; every record
carries the id of its source; device ids from carriers are pseudonyms (keyed hash),
never clear ids.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional

import faust

SCHEMA_VERSION = 1

# Plausible source timestamps: after 2000-01-01 and at most a day in the future. A clock
# that is further off is a broken source, and its records would poison time windows.
MIN_TS = 946_684_800.0
MAX_FUTURE_S = 86_400.0


# --------------------------------------------------------------------------- topics


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


# --------------------------------------------------------------------------- records


class RecordError(ValueError):
    """A record that does not meet the contract; the message is the reason, in words."""


class Contract(faust.Record, abstract=True, include_metadata=False, serializer="json"):
    """Base of every record on Kafka: versioned, strictly decoded, with domain checks."""

    def __post_init__(self) -> None:
        # Faust shares a mutable default between instances; give each record its own copy.
        for name, default in _mutable_defaults(type(self)):
            if getattr(self, name) is default:
                setattr(self, name, type(default)())

    def problems(self) -> list[str]:
        """Domain rules beyond types (ranges, consistency); empty when the record is good."""
        return []


@functools.cache
def _mutable_defaults(cls: type[Contract]) -> tuple[tuple[str, Any], ...]:
    """(field, default) of a record's list and dict defaults, looked up once per class."""
    return tuple((k, v) for k, v in cls._options.defaults.items() if isinstance(v, (list, dict)))


class MeterReading(Contract):
    """One interval reading of one meter, as the utility's collection system reports it."""

    v: int
    source_id: str  # the utility feed that sent it
    meter_id: str
    ts: float  # end of the interval, UTC epoch seconds
    interval_s: int = 900
    energy_kwh: Optional[float] = None  # energy used in the interval
    power_kw: Optional[float] = None  # average power over the interval
    register_kwh: Optional[float] = None  # cumulative register, if the meter has one

    def problems(self) -> list[str]:
        found = _ts_problems(self.ts)
        if self.energy_kwh is None and self.power_kw is None:
            found.append("a reading needs energy_kwh or power_kw")
        if not 60 <= self.interval_s <= 86_400:
            found.append(f"interval_s {self.interval_s} is outside 60..86400")
        for name in ("energy_kwh", "power_kw", "register_kwh"):
            value = getattr(self, name)
            if value is not None and value < 0:
                found.append(f"{name} is negative ({value})")
        # 100 MW from a village meter is a broken meter or a unit error, not a theft.
        if self.power_kw is not None and self.power_kw > 100_000:
            found.append(f"power_kw {self.power_kw} is absurd (over 100 MW)")
        if self.energy_kwh is not None and self.energy_kwh > 100_000 * self.interval_s / 3600:
            found.append(f"energy_kwh {self.energy_kwh} is absurd (over 100 MW for the interval)")
        return found


class MeterReadingBatch(Contract):
    """Many readings in one message, for throughput. Each item is a MeterReading without
    ``v`` and ``source_id`` (the batch's apply). Producers put only meters of one partition
    in a batch (streams.ingest does), so per-meter state stays on its partition."""

    v: int
    source_id: str
    readings: list[dict[str, Any]]


class FencePing(Contract):
    """A device seen by a carrier's electronic fence. device_pid is a keyed-hash pseudonym."""

    v: int
    source_id: str  # the carrier feed
    device_pid: str
    device_kind: Literal["phone", "vehicle_terminal"]
    ts: float
    lon: Optional[float] = None
    lat: Optional[float] = None
    accuracy_m: Optional[float] = None
    cell_id: Optional[str] = None
    zone_id: Optional[str] = None
    event: Optional[Literal["enter", "exit", "present"]] = None

    def problems(self) -> list[str]:
        found = _ts_problems(self.ts)
        has_position = self.lon is not None or self.lat is not None
        if has_position and (self.lon is None or self.lat is None):
            found.append("a position needs both lon and lat")
        if not has_position and self.cell_id is None and self.zone_id is None:
            found.append("a ping needs a position (lon, lat), a cell_id or a zone_id")
        if self.lon is not None and not -180 <= self.lon <= 180:
            found.append(f"lon {self.lon} is outside -180..180")
        if self.lat is not None and not -90 <= self.lat <= 90:
            found.append(f"lat {self.lat} is outside -90..90")
        if self.accuracy_m is not None and self.accuracy_m < 0:
            found.append(f"accuracy_m is negative ({self.accuracy_m})")
        return found


class FencePingBatch(Contract):
    """Many pings in one message. Each item is a FencePing without ``v`` and ``source_id``;
    producers put only devices of one partition in a batch (streams.ingest does)."""

    v: int
    source_id: str
    pings: list[dict[str, Any]]


def decode_batch(raw: bytes | None, record: type[R], batch: type[Contract], rows_key: str,
                 ) -> tuple[list[R], list[tuple[int, str]]]:
    """A message holding one record or a batch of them -> good records, (index, reason) of bad ones."""
    data = parse_json(raw)
    if not (isinstance(data, dict) and rows_key in data):
        return [decode(record, data)], []
    items = data[rows_key]
    if not isinstance(items, list):
        raise RecordError(f"{rows_key}: expected a list, got {items!r:.40}")
    # The envelope is checked as a whole; each item on its own, so one bad row does not
    # cost the good ones.
    envelope = decode(batch, {**data, rows_key: []})
    shared = {name: getattr(envelope, name) for name in _fields(batch) if name != rows_key}
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


def decode_meter_message(raw: bytes | None) -> tuple[list[MeterReading], list[tuple[int, str]]]:
    """A ``meter-readings`` message: one MeterReading or a MeterReadingBatch."""
    return decode_batch(raw, MeterReading, MeterReadingBatch, "readings")


def decode_fence_message(raw: bytes | None) -> tuple[list[FencePing], list[tuple[int, str]]]:
    """A ``fence-pings`` message: one FencePing or a FencePingBatch."""
    return decode_batch(raw, FencePing, FencePingBatch, "pings")


class FencePresence(Contract):
    """A device's counted presence in a fence zone (internal: fence agent -> zone agent)."""

    v: int
    zone_id: str
    device_pid: str
    device_kind: Literal["phone", "vehicle_terminal"]
    since: float
    ts: float
    left: bool = False
    lon: Optional[float] = None
    lat: Optional[float] = None


class FencePresenceBatch(Contract):
    """The counted visits of one zone that one ``fence-pings`` message gave (internal:
    fence agent -> zone agent, keyed by zone). Each item is a FencePresence without ``v``
    and ``zone_id``; one message per zone instead of one per visit."""

    v: int
    zone_id: str
    presences: list[dict[str, Any]]


def decode_presence_message(raw: bytes | None) -> tuple[list[FencePresence], list[tuple[int, str]]]:
    """A ``fence-presence`` message: one FencePresence or a FencePresenceBatch."""
    return decode_batch(raw, FencePresence, FencePresenceBatch, "presences")


class Signal(Contract):
    """One piece of evidence from one detector, for one site. Keyed by site_id on Kafka."""

    v: int
    signal_id: str  # stable: the same evidence twice has the same id
    site_id: str
    source_kind: Literal["vision", "power", "fence"]
    source_id: str  # camera, meter or fence zone
    kind: str  # e.g. person_at_shaft, reconnection, crew_in_zone
    ts: float  # when the evidence was observed (source time)
    strength: float  # 0..1, probability-like
    summary: str  # one line a patrol member can read
    details: dict[str, Any] = {}
    evidence: list[str] = []  # references: snapshot paths, curve ids

    def problems(self) -> list[str]:
        found = _ts_problems(self.ts)
        if not 0.0 <= self.strength <= 1.0:
            found.append(f"strength {self.strength} is outside 0..1")
        return found


class Incident(Contract):
    """The latest state of one incident, published to the compacted ``alerts`` topic."""

    v: int
    incident_id: str
    site_id: str
    state: Literal["new", "acknowledged", "dispatched", "resolved"]
    severity: Literal["info", "low", "medium", "high", "critical"]
    score: float
    opened_at: float
    updated_at: float
    summary: str
    signal_ids: list[str] = []
    disposition: Optional[str] = None
    silenced_by: Optional[str] = None
    previous_incident_id: Optional[str] = None

    @classmethod
    def from_store(cls, row: dict[str, Any]) -> Incident:
        """The record of an incident row of alerts.store."""
        return cls(
            v=SCHEMA_VERSION, incident_id=row["id"], site_id=row["site_id"], state=row["state"],
            severity=row["severity"], score=row["score"], opened_at=row["opened_at"], updated_at=row["updated_at"],
            summary=row["summary"], signal_ids=list(row["draft"].get("signal_ids", [])),
            disposition=row.get("disposition"),
            silenced_by=str(row["silenced_by"]) if row.get("silenced_by") is not None else None,
            previous_incident_id=row.get("previous_incident_id"),
        )


class DeadLetter(Contract):
    """Input that was not accepted: the original bytes, where they came from, and why."""

    v: int
    source: str  # the component that refused it: power-agent, meter-ingest-http, ...
    reason: str
    at: float  # when it was refused (UTC epoch seconds, this system's clock)
    topic: Optional[str] = None  # the topic it was read from, when it came from Kafka
    partition: Optional[int] = None
    offset: Optional[int] = None
    key_b64: Optional[str] = None
    value_b64: str = ""
    headers: dict[str, str] = {}  # header name -> base64 of its bytes

    @classmethod
    def of(
        cls,
        *,
        source: str,
        reason: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: typing.Iterable[tuple[str, bytes]] | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        return cls(
            v=SCHEMA_VERSION,
            source=source,
            reason=reason,
            at=time.time(),
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=_b64(key) if key is not None else None,
            value_b64=_b64(value or b""),
            headers={name: _b64(data) for name, data in (headers or [])},
        )

    def original_value(self) -> bytes:
        return base64.b64decode(self.value_b64)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ts_problems(ts: float) -> list[str]:
    if not math.isfinite(ts) or ts < MIN_TS:
        return [f"ts {ts} is not a plausible UTC epoch time in seconds"]
    if ts > time.time() + MAX_FUTURE_S:
        return [f"ts {ts} is more than a day in the future (is the source clock wrong, or in ms?)"]
    return []


# --------------------------------------------------------------------------- frames


FRAME_HEADERS = ("camera_id", "site_id", "captured_at", "seq")


@dataclass(frozen=True)
class FrameMeta:
    """What travels in the Kafka headers of a JPEG frame on ``frames``."""

    camera_id: str
    site_id: str
    captured_at: float
    seq: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("camera_id", self.camera_id.encode()),
            ("site_id", self.site_id.encode()),
            ("captured_at", repr(self.captured_at).encode()),
            ("seq", str(self.seq).encode()),
            ("v", str(SCHEMA_VERSION).encode()),
        ]

    @classmethod
    def from_headers(cls, headers: typing.Iterable[tuple[str, bytes]] | typing.Mapping[str, bytes]) -> FrameMeta:
        items = headers.items() if isinstance(headers, typing.Mapping) else headers
        found = {name: value for name, value in items}
        missing = [name for name in FRAME_HEADERS if name not in found]
        if missing:
            raise RecordError(f"frame headers missing: {', '.join(missing)}")
        try:
            captured_at = float(found["captured_at"].decode())
            seq = int(found["seq"].decode())
            camera_id = found["camera_id"].decode()
            site_id = found["site_id"].decode()
        except (UnicodeDecodeError, ValueError) as exc:
            raise RecordError(f"frame headers unreadable: {exc}") from None
        problems = _ts_problems(captured_at)
        if problems:
            raise RecordError("captured_at: " + problems[0])
        return cls(camera_id, site_id, captured_at, seq)


JPEG_MAGIC = b"\xff\xd8\xff"


def check_jpeg(value: bytes | None) -> None:
    """Cheap structural check before any decode: present, starts and ends like a JPEG."""
    if not value:
        raise RecordError("empty frame (zero bytes)")
    if not value.startswith(JPEG_MAGIC):
        raise RecordError("not a JPEG (missing SOI marker)")


# --------------------------------------------------------------------------- decoding

R = typing.TypeVar("R", bound=Contract)


def _type_problem(name: str, value: Any, tp: Any) -> str | None:
    """Strict check of a JSON value against a field annotation; None when it fits."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if any(_type_problem(name, value, option) is None for option in options):
            return None
        not_null = [option for option in options if option is not type(None)]
        if len(not_null) == 1:  # Optional[X]: say what X wants
            return _type_problem(name, value, not_null[0])
        return f"{name}: {value!r} does not fit {_type_words(tp)}"
    if tp is type(None):
        return None if value is None else f"{name}: expected null"
    if origin is Literal:
        allowed = typing.get_args(tp)
        return None if value in allowed else f"{name}: {value!r} is not one of {list(allowed)}"
    if tp is bool:
        return None if isinstance(value, bool) else f"{name}: expected true or false, got {value!r}"
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{name}: expected an integer, got {value!r}"
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"{name}: expected a number, got {value!r}"
    if tp is str:
        return None if isinstance(value, str) else f"{name}: expected a string, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return f"{name}: expected a list, got {value!r}"
        (item_tp,) = typing.get_args(tp)
        for i, item in enumerate(value):
            problem = _type_problem(f"{name}[{i}]", item, item_tp)
            if problem:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{name}: expected an object, got {value!r}"
        _, value_tp = typing.get_args(tp)
        for key, item in value.items():
            problem = _type_problem(f"{name}.{key}", item, value_tp)
            if problem:
                return problem
        return None
    if tp is Any:
        return None
    raise TypeError(f"unsupported annotation {tp!r} on {name}")


def _type_words(tp: Any) -> str:
    return json.dumps(json_type(tp))


@functools.cache
def _fields(cls: type[Contract]) -> dict[str, Any]:
    """A record's fields and their annotations (resolved once per class: it is slow)."""
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in cls._options.fields}


@functools.cache
def _required(cls: type[Contract]) -> frozenset[str]:
    return frozenset(k for k in _fields(cls) if k not in cls._options.defaults)


@functools.cache
def _fitters(cls: type[Contract]) -> dict[str, typing.Callable[[Any], bool]]:
    """Per field, a compiled yes/no version of _type_problem: decoding runs for every
    reading and ping, and walking the annotations each time cost more than the rules."""
    return {name: _fitter(tp) for name, tp in _fields(cls).items()}


def _fitter(tp: Any) -> typing.Callable[[Any], bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if len(options) == 2 and type(None) in options:  # Optional[X], the common case
            inner = _fitter(next(option for option in options if option is not type(None)))
            return lambda v: v is None or inner(v)
        fitters = [_fitter(option) for option in options]
        return lambda v: any(fits(v) for fits in fitters)
    if tp is type(None):
        return lambda v: v is None
    if origin is Literal:
        allowed = typing.get_args(tp)
        kinds = frozenset(type(a) for a in allowed)  # so that True is not 1, and lists are not compared
        return lambda v: type(v) in kinds and v in allowed
    if tp is bool:
        return lambda v: v is True or v is False
    if tp is int:
        return lambda v: type(v) is int
    if tp is float:
        isfinite = math.isfinite
        return lambda v: (type(v) is float and isfinite(v)) or type(v) is int
    if tp is str:
        return lambda v: type(v) is str
    if origin in (list, dict) or tp is Any:
        return lambda v: _type_problem("", v, tp) is None
    raise TypeError(f"unsupported annotation {tp!r}")


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
    hints, fits, required = _fields(cls), _fitters(cls), _required(cls)
    if not (data.keys() <= fits.keys() and required <= data.keys()):
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise RecordError(f"unknown fields: {', '.join(unknown)}")
        raise RecordError(f"missing fields: {', '.join(sorted(required - data.keys()))}")
    if data.get("v") != SCHEMA_VERSION:
        raise RecordError(f"schema version v={data.get('v')!r} is not supported (this system speaks v={SCHEMA_VERSION})")
    for name, value in data.items():
        if not fits[name](value):  # the fast yes/no; _type_problem says why
            raise RecordError(_type_problem(name, value, hints[name]) or f"{name}: {value!r} does not fit")
    record = _checked_record(cls, data)
    problems = record.problems()
    if problems:
        raise RecordError("; ".join(problems))
    return record


def encode(record: Contract) -> bytes:
    return json.dumps(record.asdict(), ensure_ascii=False, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- JSON Schema


def json_type(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [json_type(option) for option in typing.get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is list:
        return {"type": "array", "items": json_type(typing.get_args(tp)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_type(typing.get_args(tp)[1])}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is Any:
        return {}
    raise TypeError(f"unsupported annotation {tp!r}")


def json_schema(cls: type[Contract]) -> dict[str, Any]:
    hints = _fields(cls)
    properties = {name: json_type(tp) for name, tp in hints.items()}
    properties["v"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"shaftwatch/{cls.__name__}.v{SCHEMA_VERSION}.json",
        "title": cls.__name__,
        "description": (cls.__doc__ or "").strip(),
        "type": "object",
        "properties": properties,
        "required": [k for k in hints if k not in cls._options.defaults],
        "additionalProperties": False,
    }


PUBLISHED_RECORDS: tuple[type[Contract], ...] = (MeterReading, MeterReadingBatch, FencePing, FencePingBatch, FencePresence,
                                                 FencePresenceBatch, Signal, Incident, DeadLetter)
