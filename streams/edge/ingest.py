"""HTTP ingest for partners: batches of rows in, Kafka records out.

    POST /ingest/meter-readings     (the power utility)   JSON or CSV
    POST /ingest/fence-pings        (mobile carriers)     JSON or CSV, clear device ids
    POST /ingest/fence-pings/camara (mobile carriers)     CAMARA geofencing CloudEvents
    Authorization: Bearer <token of the source>

Carrier device ids are replaced by their keyed-hash pseudonym (streams.privacy) as soon
as a row is read; the clear id exists only in the request. A refused carrier row is
dead-lettered with its reason but without its bytes, since they hold the clear id.

Each row is validated on its own against the contract (streams.records). The answer
counts accepted and rejected rows and gives the reason of every rejected row; good rows
are produced to their topic and bad rows to ``dead-letters`` (each with its original
bytes) before the answer is sent, so "accepted" means acknowledged by Kafka. The source
id comes from the token, never from the body.

Rows are produced as batch messages (MeterReadingBatch, FencePingBatch), each holding
only keys of one partition (the partition their meter id or device pseudonym hashes to),
so per-key state stays on its partition and the agents pay their per-message cost once
per batch. Re-sending a batch is harmless: the power agent keeps the interval times it
has seen per meter and ignores a reading it already counted.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import os
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from aiohttp import web

from streams.config import IngestSource, ShaftWatchConfig
from streams.logs import ids
from streams.contract.partitioning import partition_for
from streams.kafka.producer import KafkaSink
from streams.contract.records import (
    DEAD_LETTERS, FENCE_PINGS, METER_READINGS, SCHEMA_VERSION, Contract, DeadLetter, FencePing, MeterReading,
    RecordError, json_type, decode, encode, json_schema,
)
from streams.edge.pseudonyms import load_key, pseudonymize

log = logging.getLogger("shaftwatch.ingest")

MAX_ERRORS_SHOWN = 1000


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
    extra_fields: dict[str, Any] = field(default_factory=dict)
    server_fields: tuple[str, ...] = ("v", "source_id")

    def row_fields(self) -> dict[str, Any]:
        hints = typing.get_type_hints(self.record)
        fields = {k: hints[k] for k in self.record._options.fields if k not in self.server_fields}
        return {**fields, **self.extra_fields}


METERS = Feed("meters", "/ingest/meter-readings", METER_READINGS.name, MeterReading, "readings", "meter id",
              key_of=lambda r: r.meter_id, identity=lambda r: (r.meter_id, r.ts))
FENCES = Feed("fences", "/ingest/fence-pings", FENCE_PINGS.name, FencePing, "pings", "device",
              key_of=lambda r: r.device_pid, identity=lambda r: (r.device_pid, r.ts, r.event),
              extra_fields={"device_id": str}, server_fields=("v", "source_id", "device_pid"))


class IngestError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


# --------------------------------------------------------------------------- parsing


def parse_time(value: Any) -> Any:
    """Epoch seconds stay as they are; an ISO 8601 string with a zone becomes epoch seconds."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"ts {value!r} is neither epoch seconds nor an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise RecordError(f"ts {value!r} has no time zone (add Z or +08:00)")
        return parsed.timestamp()
    return value


def _csv_value(text: str, annotation: Any) -> Any:
    """A CSV cell, typed by the record's annotation; an empty cell is null."""
    if text.strip() == "":
        return None
    options = typing.get_args(annotation) or (annotation,)
    if float in options:
        try:
            return float(text)
        except ValueError:
            return text  # left for the contract to refuse with its own words
    if int in options:
        try:
            return int(text)
        except ValueError:
            return text
    return text


def parse_rows(feed: Feed, body: bytes, content_type: str) -> list[tuple[dict | None, bytes, str | None]]:
    """The body's rows as (fields, original bytes, parse problem)."""
    if content_type in ("application/json", ""):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IngestError(400, f"body is not JSON: {exc}") from None
        rows = data.get(feed.rows_key) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise IngestError(400, f'expected a JSON list of rows, or {{"{feed.rows_key}": [...]}}')
        out = []
        for row in rows:
            raw = json.dumps(row, ensure_ascii=False).encode()
            out.append((row, raw, None) if isinstance(row, dict) else (None, raw, "a row must be a JSON object"))
        return out
    if content_type == "text/csv":
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise IngestError(400, f"CSV is not UTF-8: {exc}") from None
        reader = csv.DictReader(io.StringIO(text))
        hints = feed.row_fields()
        fields = set(hints)
        unknown = [c for c in (reader.fieldnames or []) if c not in fields]
        if not reader.fieldnames or unknown:
            raise IngestError(400, f"CSV header must name columns among {sorted(fields)}; unknown: {unknown}")
        out = []
        for line in reader:
            raw = ",".join(line.get(c) or "" for c in reader.fieldnames).encode()
            if None in line:
                out.append((None, raw, "more cells than columns"))
                continue
            out.append(({k: _csv_value(v or "", hints[k]) for k, v in line.items()}, raw, None))
        return out
    raise IngestError(415, "send application/json or text/csv")


CAMARA_PATH = "/ingest/fence-pings/camara"
CAMARA_EVENTS = {
    "org.camaraproject.geofencing-subscriptions.v0.area-entered": "enter",
    "org.camaraproject.geofencing-subscriptions.v0.area-left": "exit",
}


def camara_row(event: Any) -> dict:
    """A CAMARA Device Geofencing notification (a CloudEvent) as a fence row."""
    if not isinstance(event, dict):
        raise RecordError("a notification must be a JSON object (a CloudEvent)")
    kind = CAMARA_EVENTS.get(event.get("type"))
    if kind is None:
        raise RecordError(f"event type {event.get('type')!r} is not an area-entered or area-left notification")
    data = event.get("data")
    if not isinstance(data, dict):
        raise RecordError("data is missing")
    device = data.get("device") or {}
    device_id = (device.get("phoneNumber") or device.get("networkAccessIdentifier")
                 or (device.get("ipv4Address") or {}).get("publicAddress"))
    area = data.get("area") or {}
    if area.get("areaType") != "CIRCLE":
        raise RecordError(f"area type {area.get('areaType')!r} is not supported (CIRCLE is)")
    center = area.get("center") or {}
    return {"device_id": device_id, "device_kind": "phone", "ts": event.get("time"),
            "lon": center.get("longitude"), "lat": center.get("latitude"), "accuracy_m": area.get("radius"),
            "event": kind}


def parse_camara_events(feed: Feed, body: bytes, content_type: str) -> list[tuple[dict | None, bytes, str | None]]:
    if content_type not in ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json"):
        raise IngestError(415, "send CloudEvents as application/cloudevents+json or application/json")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(400, f"body is not JSON: {exc}") from None
    out = []
    for event in data if isinstance(data, list) else [data]:
        raw = json.dumps(event, ensure_ascii=False).encode()
        try:
            out.append((camara_row(event), raw, None))
        except RecordError as exc:
            out.append((None, raw, str(exc)))
    return out


def validate_rows(feed: Feed, rows, source_id: str, check: Callable[[Contract], None],
                  prepare: Callable[[dict], dict] = lambda fields: fields):
    """-> accepted records, and (row number, original bytes, reason) of the rejected ones."""
    accepted: list[Contract] = []
    rejected: list[tuple[int, bytes, str]] = []
    seen: dict[tuple, int] = {}
    for number, (fields, raw, problem) in enumerate(rows, start=1):
        try:
            if problem:
                raise RecordError(problem)
            reserved = [k for k in feed.server_fields if k in fields]
            if reserved:
                raise RecordError(f"{', '.join(reserved)} set by the server (the source comes from the token)")
            if "ts" in fields:
                fields = {**fields, "ts": parse_time(fields["ts"])}
            fields = prepare(fields)
            record = decode(feed.record, {"v": SCHEMA_VERSION, "source_id": source_id, **fields})
            check(record)
            identity = feed.identity(record)
            if identity in seen:
                raise RecordError(f"duplicate of row {seen[identity]} (same {feed.key_name} and time)")
            seen[identity] = number
            accepted.append(record)
        except RecordError as exc:
            rejected.append((number, raw, str(exc)))
    return accepted, rejected


# --------------------------------------------------------------------------- the endpoint


class IngestService:
    """Tokens, validation and producing, behind the aiohttp routes."""

    def __init__(self, cfg: ShaftWatchConfig, sink: KafkaSink):
        self.cfg = cfg
        self.sink = sink
        self.tokens: dict[str, IngestSource] = {}
        for source in cfg.runtime.ingest.sources:
            token = os.environ.get(source.token_env)
            if token:
                self.tokens[token] = source
            else:
                log.warning("ingest source has no token; it cannot push", extra=ids(
                    source_id=source.id, token_env=source.token_env))
        self.known_meters = {m.id for m in cfg.meters.meters}
        self.known_zones = {z.id for z in cfg.fences.zones}
        self.pseudonym_key = load_key(cfg.runtime.pseudonym_key_env)

    def authenticate(self, request: web.Request, feed: Feed) -> IngestSource:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise IngestError(401, "missing bearer token")
        offered = header.removeprefix("Bearer ").strip().encode()
        for token, source in self.tokens.items():
            if hmac.compare_digest(token.encode(), offered):
                if source.feed != feed.name:
                    raise IngestError(403, f"source {source.id} may push {source.feed}, not {feed.name}")
                return source
        raise IngestError(401, "unknown token")

    def check_meter(self, record: MeterReading) -> None:
        if record.meter_id not in self.known_meters:
            raise RecordError(f"unknown meter {record.meter_id!r} (not in the county's meter list)")

    def check_ping(self, record: FencePing) -> None:
        if record.zone_id is not None and record.zone_id not in self.known_zones:
            raise RecordError(f"unknown fence zone {record.zone_id!r}")

    def pseudonymize_row(self, fields: dict) -> dict:
        """The clear device id becomes its keyed-hash pseudonym here, and goes no further."""
        fields = dict(fields)
        device_id = fields.pop("device_id", None)
        if not isinstance(device_id, str) or not device_id.strip():
            raise RecordError("device_id is missing or empty")
        fields["device_pid"] = pseudonymize(self.pseudonym_key, device_id)
        return fields

    async def handle(self, request: web.Request, feed: Feed, check: Callable[[Contract], None],
                     prepare: Callable[[dict], dict] = lambda fields: fields,
                     parse: Callable | None = None) -> web.Response:
        try:
            source = self.authenticate(request, feed)
            body = await request.read()
            rows = (parse or parse_rows)(feed, body, request.content_type)
            if len(rows) > self.cfg.runtime.ingest.max_rows:
                raise IngestError(413, f"{len(rows)} rows; at most {self.cfg.runtime.ingest.max_rows} per request")
        except IngestError as exc:
            if exc.status in (400, 415):
                # A carrier body that cannot be read may hold clear device ids: keep only the reason.
                raw = b"" if feed is FENCES else await request.read()
                await self._dead_letter(feed, raw, f"request refused: {exc}")
            return web.json_response({"error": str(exc)}, status=exc.status)
        accepted, rejected = validate_rows(feed, rows, source.id, check, prepare)
        await self._produce(feed, accepted)
        for number, raw, reason in rejected:
            if feed is FENCES:
                raw = b""  # a refused carrier row still holds a clear device id: keep only the reason
            await self._dead_letter(feed, raw, f"row {number}: {reason}", wait=False)
        await self.sink.flush()
        log.info("ingest batch", extra=ids(source_id=source.id, feed=feed.name, accepted=len(accepted),
                                           rejected=len(rejected)))
        return web.json_response({
            "source_id": source.id,
            "accepted": len(accepted),
            "rejected": len(rejected),
            "errors": [{"row": n, "reason": r} for n, _, r in rejected[:MAX_ERRORS_SHOWN]],
        })

    async def _produce(self, feed: Feed, records: list[Contract]) -> None:
        """Batches of up to rows_per_message rows, each holding keys of one partition only."""
        topic = self.cfg.topic(feed.topic)
        partitions = len(await self.sink.partitions_for(topic))
        groups: dict[int, list[Contract]] = {}
        for r in records:
            groups.setdefault(partition_for(feed.key_of(r), partitions), []).append(r)
        size = self.cfg.runtime.ingest.rows_per_message
        futures = []
        for partition, group in groups.items():
            for i in range(0, len(group), size):
                chunk = group[i:i + size]
                value = json.dumps({"v": SCHEMA_VERSION, "source_id": chunk[0].source_id, feed.rows_key: [
                    {k: v for k, v in r.asdict().items() if k not in ("v", "source_id")} for r in chunk]}).encode()
                futures.append(await self.sink.send(topic, feed.key_of(chunk[0]), value, partition=partition,
                                                    wait=False))
        for future in futures:
            await future  # raises if Kafka did not take it: the client gets a 5xx and re-sends

    async def _dead_letter(self, feed: Feed, raw: bytes, reason: str, wait: bool = True) -> None:
        letter = DeadLetter.of(source=f"{feed.name}-ingest-http", reason=reason, value=raw)
        await self.sink.send(self.cfg.topic(DEAD_LETTERS.name), feed.topic, encode(letter), wait=wait)


INGEST = web.AppKey("ingest", IngestService)


def add_ingest_routes(app: web.Application, cfg: ShaftWatchConfig, sink: Callable[[], KafkaSink]) -> None:
    """Mount the ingest endpoints; ``sink()`` gives the server's producer once it started."""

    async def start(app: web.Application) -> None:
        app[INGEST] = IngestService(cfg, sink())

    async def meters(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(request, METERS, service.check_meter)

    async def pings(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(request, FENCES, service.check_ping, service.pseudonymize_row)

    async def camara(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(request, FENCES, service.check_ping, service.pseudonymize_row,
                                    parse=parse_camara_events)

    async def spec(request: web.Request) -> web.Response:
        return web.json_response(openapi())

    app.on_startup.append(start)
    app.router.add_post(METERS.path, meters)
    app.router.add_post(FENCES.path, pings)
    app.router.add_post(CAMARA_PATH, camara)
    app.router.add_get("/openapi.json", spec)


# --------------------------------------------------------------------------- OpenAPI


def _row_schema(feed: Feed) -> dict:
    record = json_schema(feed.record)
    props = {}
    for name, annotation in feed.row_fields().items():
        props[name] = record["properties"].get(name) or json_type(annotation)
    if "ts" in props:
        props["ts"] = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
                       "description": "UTC epoch seconds, or ISO 8601 with a time zone"}
    if "device_id" in props:
        props["device_id"] = {"type": "string", "description": "the device's id in clear (MSISDN, IMSI or "
                              "terminal id); ShaftWatch replaces it with a keyed-hash pseudonym on arrival"}
    required = [r for r in record["required"] if r in props] + [k for k in feed.extra_fields]
    return {"type": "object", "title": f"{feed.record.__name__}Row", "description": record["description"],
            "properties": props, "required": required, "additionalProperties": False}


def openapi() -> dict:
    """The published contract of the ingest API (also in streams/schemas/openapi.json)."""
    result = {
        "type": "object",
        "properties": {
            "source_id": {"type": "string"},
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "row": {"type": "integer", "description": "1-based row number in the request"},
                "reason": {"type": "string"}}}},
        },
        "required": ["accepted", "rejected", "errors"],
    }
    paths = {}
    for feed in (METERS, FENCES):
        row = f"#/components/schemas/{feed.record.__name__}Row"
        paths[feed.path] = {"post": {
            "summary": f"Push a batch of {feed.name} rows",
            "description": "Each row is validated on its own; good rows go to Kafka, bad rows to dead-letters. "
                           "Re-sending the same rows is safe (idempotent on key and time).",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"oneOf": [
                    {"type": "array", "items": {"$ref": row}},
                    {"type": "object", "properties": {feed.rows_key: {"type": "array", "items": {"$ref": row}}},
                     "required": [feed.rows_key]}]}},
                "text/csv": {"schema": {"type": "string", "description": "a header row naming the row fields, "
                                        "then one row per line; empty cells are null"}},
            }},
            "responses": {
                "200": {"description": "counts and the reason of every rejected row",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
                "400": {"description": "the body cannot be read as rows"},
                "401": {"description": "missing or unknown token"},
                "403": {"description": "the token's source may not push this feed"},
                "413": {"description": "too many rows in one request"},
                "415": {"description": "not JSON or CSV"},
            },
        }}
    paths[CAMARA_PATH] = {"post": {
        "summary": "Push CAMARA Device Geofencing notifications (CloudEvents)",
        "description": "area-entered / area-left notifications of GSMA CAMARA Device Geofencing subscriptions, "
                       "one CloudEvent or a JSON array of them. The circle's centre stands for the position and "
                       "its radius for the accuracy. Answered like the plain fence endpoint.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array"}},
        }},
        "responses": paths[FENCES.path]["post"]["responses"],
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ShaftWatch ingest API", "version": f"{SCHEMA_VERSION}.0",
                 "description": "For partners that push data: the power utility (meter readings) and mobile "
                                "carriers (fence pings). Ask the county for a token."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {f"{MeterReading.__name__}Row": _row_schema(METERS), f"{FencePing.__name__}Row":
                        _row_schema(FENCES), "IngestResult": result},
        },
    }
