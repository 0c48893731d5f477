"""The records that cross Kafka, as typed, versioned ``faust.Record`` classes.

A change to a record is a change to every producer and consumer in the same commit, and
bumps SCHEMA_VERSION when it is not backward compatible. ``shaftwatch schemas`` writes
the JSON Schema of every record to ``streams/schemas/`` for partners (utilities,
carriers) to read.

Conventions: timestamps are UTC epoch seconds (float) from the source; every record
carries the id of its source; device ids from carriers are pseudonyms (keyed hash),
never clear ids. Bytes become records only through ``streams.contract.decoding``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import time
import typing
from typing import Any, Literal, Optional

import faust

from streams.contract.types import Shape, shape_of

SCHEMA_VERSION = 1

# Plausible source timestamps: from EARLIEST_TS (1990-01-01 UTC) to at most a day in the
# future. A clock outside that is broken (0, seconds since boot, milliseconds), and its
# records would poison time windows. EARLIEST_TS is the contract's floor, for back-filling
# history; each feed's own earliest date (``history_from`` in meters.yaml and fences.yaml,
# 2000-01-01 unless a utility or carrier sets it earlier) is enforced by the agents, which
# refuse older records to dead-letters with that reason. A record is judged by its own time.
EARLIEST_TS = 631_152_000.0
MAX_FUTURE_S = 86_400.0


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


@functools.cache
def field_shapes(cls: type[Contract]) -> dict[str, Shape]:
    """A record's fields and what each accepts (resolved once per class: it is slow)."""
    hints = typing.get_type_hints(cls)
    return {name: shape_of(hints[name]) for name in cls._options.fields}


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
        found = ts_problems(self.ts)
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
    in a batch (streams.edge.ingest does), so per-meter state stays on its partition."""

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
        found = ts_problems(self.ts)
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
    producers put only devices of one partition in a batch (streams.edge.ingest does)."""

    v: int
    source_id: str
    pings: list[dict[str, Any]]


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


class Signal(Contract):
    """One piece of evidence from one detector, for one site. Keyed by site_id on Kafka."""

    v: int
    signal_id: str  # stable: the same evidence twice has the same id
    site_id: str
    source_kind: Literal["vision", "power", "fence", "external"]  # external: a patrol, a drone team, a tip-off
    source_id: str  # camera, meter or fence zone
    kind: str  # e.g. person_at_shaft, reconnection, crew_in_zone
    ts: float  # when the evidence was observed (source time)
    strength: float  # 0..1, probability-like
    summary: str  # one line a patrol member can read
    details: dict[str, Any] = {}
    evidence: list[str] = []  # references: snapshot paths, curve ids

    def problems(self) -> list[str]:
        found = ts_problems(self.ts)
        if not 0.0 <= self.strength <= 1.0:
            found.append(f"strength {self.strength} is outside 0..1")
        return found

    @classmethod
    def of(cls, *, identity: typing.Sequence[Any], site_id: str, source_kind: str, source_id: str, kind: str,
           ts: float, strength: float, summary: str, details: dict[str, Any], evidence: list[str]) -> Signal:
        """The one way a detector's finding becomes a Signal. Its id is a hash of the source
        kind and ``identity`` (what makes this piece of evidence itself: the meter, rule,
        episode and time, say), so a replay after a crash gives the same id and fusion
        drops the repeat."""
        key = "|".join([source_kind, *map(str, identity)])
        return cls(v=SCHEMA_VERSION, signal_id=hashlib.sha256(key.encode()).hexdigest()[:24], site_id=site_id,
                   source_kind=source_kind, source_id=source_id, kind=kind, ts=ts, strength=strength,
                   summary=summary, details=details, evidence=evidence)


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
    signal_ids: list[str] = []  # the newest 100 signals' ids (alerts.fusion.RECENT_SIGNALS)...
    signal_count: int = 0  # ...of this many (0 from a publisher before this field: count signal_ids)
    disposition: Optional[str] = None
    silenced_by: Optional[str] = None
    previous_incident_id: Optional[str] = None

    @classmethod
    def of(cls, published: dict[str, Any]) -> Incident:
        """The record of an incident as the alert store publishes it (alerts.store's
        ``published``: this record's fields, without the version)."""
        return cls(v=SCHEMA_VERSION, **published)


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


def ts_problems(ts: float) -> list[str]:
    if not math.isfinite(ts) or ts < EARLIEST_TS:
        return [f"ts {ts} is not a plausible UTC epoch time in seconds (before 1990-01-01)"]
    if ts > time.time() + MAX_FUTURE_S:
        return [f"ts {ts} is more than a day in the future (is the source clock wrong, or in ms?)"]
    return []
