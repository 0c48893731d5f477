"""The one way gateways and feeders write to Kafka: acknowledged by all in-sync replicas,
idempotent (a retried send is not written twice), and counted in metrics.

A broker restart can leave an idempotent producer out of step with the broker's view of
its sequence numbers (OutOfOrderSequenceNumber, UnknownProducerId). aiokafka then ends the
producer's sender for good and every later send fails the same way. The sink replaces
such a producer with a new one (a new producer id) before its next send; the send that
failed was not acknowledged, so the caller's retry of it writes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId

from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.logs import ids
from streams.metrics import PRODUCE_ERRORS_TOTAL, PRODUCER_RENEWALS_TOTAL, RECORDS_PRODUCED_TOTAL

log = logging.getLogger("shaftwatch.producer")

# Errors after which an aiokafka producer sends nothing more.
FATAL = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


class KafkaSink:
    def __init__(self, bootstrap: str, name: str, *, linger_ms: int = 5, max_request_size: int = 8 * 1024 * 1024,
                 security: KafkaSecurity = PLAINTEXT):
        self.name = name
        self._settings = dict(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_request_size=max_request_size,
            request_timeout_ms=30000,
            retry_backoff_ms=200,
            client_id=f"shaftwatch-{name}",
            **security.client_args(),
        )
        self._producer = AIOKafkaProducer(**self._settings)
        self._finished = False  # the producer hit a FATAL error: replace it before the next send

    async def start(self) -> None:
        await self._producer.start()

    async def _renew(self) -> None:
        old, self._producer = self._producer, AIOKafkaProducer(**self._settings)
        await self._producer.start()
        self._finished = False
        with contextlib.suppress(Exception):
            await old.stop()
        PRODUCER_RENEWALS_TOTAL.labels(producer=self.name).inc()
        log.warning("producer replaced after a fatal error", extra=ids(producer=self.name))

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Send what is pending and close, waiting at most ``timeout_s``: when the cluster
        cannot take a write (its leaders down, too few in-sync replicas) aiokafka would wait
        for ever. What is dropped then was never acknowledged to anyone."""
        try:
            await asyncio.wait_for(self._producer.stop(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("producer closed with records unsent (never acknowledged)",
                        extra=ids(producer=self.name, timeout_s=timeout_s))

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, topic: str, key: bytes | str, value: bytes, headers=None, wait: bool = True,
                   partition: int | None = None):
        """Send one record; with wait=True return only once the broker acknowledged it."""
        key_bytes = key.encode() if isinstance(key, str) else key
        if self._finished:
            await self._renew()
        try:
            future = await self._producer.send(topic, value=value, key=key_bytes, headers=headers,
                                               partition=partition)
            if wait:
                metadata = await future
                RECORDS_PRODUCED_TOTAL.labels(topic=topic, producer=self.name).inc()
                return metadata
            future.add_done_callback(lambda f: self._count(topic, f))
            return future
        except Exception as exc:
            self._finished = self._finished or isinstance(exc, FATAL)
            PRODUCE_ERRORS_TOTAL.labels(topic=topic, producer=self.name).inc()
            raise

    def _count(self, topic: str, future) -> None:
        # A cancelled send (its caller gave up waiting: the ingest's 503) is an error too.
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            self._finished = self._finished or isinstance(error, FATAL)
            PRODUCE_ERRORS_TOTAL.labels(topic=topic, producer=self.name).inc()
            log.error("produce failed", extra=ids(topic=topic, producer=self.name))
        else:
            RECORDS_PRODUCED_TOTAL.labels(topic=topic, producer=self.name).inc()

    async def partitions_for(self, topic: str) -> set[int]:
        return await self._producer.partitions_for(topic)

    async def flush(self) -> None:
        await self._producer.flush()
