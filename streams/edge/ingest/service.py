"""The ingest endpoints: who may push (tokens), each row validated on its own, good rows
produced as batch messages of one partition each, bad rows dead-lettered, and the answer."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from aiohttp import web
from aiokafka.errors import KafkaError

from alerts.auth import bearer_holder, tokens_in
from streams.config import IngestSource, ShaftWatchConfig
from streams.contract.decoding import decode, encode, encode_batch
from streams.contract.partitioning import partition_for
from streams.contract.records import SCHEMA_VERSION, Contract, DeadLetter, FencePing, MeterReading, RecordError
from streams.contract.topics import DEAD_LETTERS
from streams.edge.ingest.camara import CamaraIntake
from streams.edge.ingest.feeds import CAMARA_PATH, FENCES, METERS, Feed
from streams.edge.ingest.openapi import openapi
from streams.edge.ingest.parsing import IngestError, Rows, parse_rows, parse_time
from streams.edge.pseudonyms import load_key, pseudonymize
from streams.kafka.producer import KafkaSink
from streams.logs import ids
from streams.metrics import INGEST_UNAVAILABLE_TOTAL

log = logging.getLogger("shaftwatch.ingest")

MAX_ERRORS_SHOWN = 1000
# A batch that Kafka has not acknowledged within this time is answered 503 with Retry-After
# (a partner's client must never wait without an answer while a broker is down).
PRODUCE_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5


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


class IngestService:
    """Tokens, validation and producing, behind the aiohttp routes."""

    def __init__(self, cfg: ShaftWatchConfig, sink: KafkaSink):
        self.cfg = cfg
        self.sink = sink
        self.tokens: dict[str, IngestSource] = {}
        for source in cfg.runtime.ingest.sources:
            tokens = tokens_in(os.environ.get(source.token_env))
            for token in tokens:  # two while the token is rotated: the new one and the old one
                self.tokens[token] = source
            if not tokens:
                log.warning("ingest source has no token; it cannot push", extra=ids(
                    source_id=source.id, token_env=source.token_env))
        self.known_meters = {m.id for m in cfg.meters.meters}
        self.known_zones = {z.id for z in cfg.fences.zones}
        self.pseudonym_key = load_key(cfg.runtime.pseudonym_key_env)

    def authenticate(self, request: web.Request, feed: Feed) -> IngestSource:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise IngestError(401, "missing bearer token")
        source = bearer_holder(header, self.tokens)
        if source is None:
            raise IngestError(401, "unknown token")
        if source.feed != feed.name:
            raise IngestError(403, f"source {source.id} may push {source.feed}, not {feed.name}")
        return source

    def check_known_meter(self, record: MeterReading) -> None:
        if record.meter_id not in self.known_meters:
            raise RecordError(f"unknown meter {record.meter_id!r} (not in the county's meter list)")

    def check_known_zone(self, record: FencePing) -> None:
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
                     read: Callable[[IngestSource, bytes, str], Awaitable[tuple[Rows, dict]]] | None = None
                     ) -> web.Response:
        """``read(source, body, content type)`` -> (rows, more fields for the answer) replaces
        the plain rows of ``parse_rows`` (CAMARA events: streams.edge.ingest.camara)."""
        try:
            source = self.authenticate(request, feed)
            body = await request.read()
            if read is None:
                rows, more = parse_rows(feed, body, request.content_type), {}
            else:
                rows, more = await read(source, body, request.content_type)
            if len(rows) > self.cfg.runtime.ingest.max_rows:
                raise IngestError(413, f"{len(rows)} rows; at most {self.cfg.runtime.ingest.max_rows} per request")
        except IngestError as exc:
            if exc.status in (400, 415):
                # A carrier body that cannot be read may hold clear device ids: keep only the reason.
                raw = b"" if feed is FENCES else await request.read()
                try:
                    await asyncio.wait_for(self._dead_letter(feed, raw, f"request refused: {exc}"), PRODUCE_TIMEOUT_S)
                except (asyncio.TimeoutError, KafkaError) as error:
                    # The answer is about the body, not about Kafka: the client still hears why.
                    log.warning("refused request not dead-lettered: Kafka did not take it",
                                extra=ids(feed=feed.name, error=repr(error)))
            return web.json_response({"error": str(exc)}, status=exc.status)
        accepted, rejected = validate_rows(feed, rows, source.id, check, prepare)
        try:
            await asyncio.wait_for(self._produce_all(feed, accepted, rejected), PRODUCE_TIMEOUT_S)
        except (asyncio.TimeoutError, KafkaError) as exc:
            # Not acknowledged: the client is told to send the batch again (a re-sent batch is
            # harmless, see the module's doc), and when, instead of being left waiting.
            INGEST_UNAVAILABLE_TOTAL.labels(feed=feed.name).inc()
            log.warning("ingest batch not acknowledged by Kafka; answered 503", extra=ids(
                source_id=source.id, feed=feed.name, rows=len(rows), error=repr(exc)))
            return web.json_response(
                {"error": f"Kafka did not acknowledge the batch within {PRODUCE_TIMEOUT_S:.0f} s; nothing of it "
                          f"counts as accepted: send it again after {RETRY_AFTER_S} s",
                 "retry_after_s": RETRY_AFTER_S},
                status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        log.info("ingest batch", extra=ids(source_id=source.id, feed=feed.name, accepted=len(accepted),
                                           rejected=len(rejected)))
        return web.json_response({
            "source_id": source.id,
            "accepted": len(accepted),
            "rejected": len(rejected),
            "errors": [{"row": n, "reason": r} for n, _, r in rejected[:MAX_ERRORS_SHOWN]],
            **more,
        })

    async def _produce_all(self, feed: Feed, accepted: list[Contract], rejected: list[tuple[int, bytes, str]]) -> None:
        """Good rows to their topic and bad rows to dead-letters, all acknowledged by Kafka."""
        await self._produce(feed, accepted)
        for number, raw, reason in rejected:
            if feed is FENCES:
                raw = b""  # a refused carrier row still holds a clear device id: keep only the reason
            await self._dead_letter(feed, raw, f"row {number}: {reason}", wait=False)
        await self.sink.flush()

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
                value = encode_batch(feed.record, {"source_id": chunk[0].source_id}, chunk)
                futures.append(await self.sink.send(topic, feed.key_of(chunk[0]), value, partition=partition,
                                                    wait=False))
        for future in futures:
            await future  # raises if Kafka did not take it: the client gets a 5xx and re-sends

    async def _dead_letter(self, feed: Feed, raw: bytes, reason: str, wait: bool = True) -> None:
        letter = DeadLetter.of(source=f"{feed.name}-ingest-http", reason=reason, value=raw)
        await self.sink.send(self.cfg.topic(DEAD_LETTERS.name), feed.topic, encode(letter), wait=wait)


INGEST = web.AppKey("ingest", IngestService)


def add_ingest_routes(app: web.Application, cfg: ShaftWatchConfig, sink: Callable[[], KafkaSink],
                      fence_subscriptions) -> None:
    """Mount the ingest endpoints; ``sink()`` gives the server's producer once it started;
    ``fence_subscriptions`` (the store's) places CAMARA events that come without a device."""
    intake = CamaraIntake(fence_subscriptions)

    async def start(app: web.Application) -> None:
        app[INGEST] = IngestService(cfg, sink())

    async def meters(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(request, METERS, service.check_known_meter)

    async def pings(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(request, FENCES, service.check_known_zone, service.pseudonymize_row)

    async def camara(request: web.Request) -> web.Response:
        service = request.app[INGEST]
        return await service.handle(
            request, FENCES, service.check_known_zone,
            lambda fields: intake.pseudonymized(fields, service.pseudonymize_row),
            read=lambda source, body, content_type: intake.rows(source.id, body, content_type))

    async def spec(request: web.Request) -> web.Response:
        return web.json_response(openapi())

    app.on_startup.append(start)
    app.router.add_post(METERS.path, meters)
    app.router.add_post(FENCES.path, pings)
    app.router.add_post(CAMARA_PATH, camara)
    app.router.add_get("/openapi.json", spec)
