"""The one way gateways and feeders write to Kafka: acknowledged by all in-sync replicas,
idempotent (a retried send is not written twice), and counted in metrics."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer

from .metrics import PRODUCE_ERRORS, RECORDS_PRODUCED

log = logging.getLogger("shaftwatch.producer")


class KafkaSink:
    def __init__(self, bootstrap: str, name: str, *, linger_ms: int = 5, max_request_size: int = 8 * 1024 * 1024):
        self.name = name
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_request_size=max_request_size,
            request_timeout_ms=30000,
            retry_backoff_ms=200,
            client_id=f"shaftwatch-{name}",
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, topic: str, key: bytes | str, value: bytes, headers=None, wait: bool = True,
                   partition: int | None = None):
        """Send one record; with wait=True return only once the broker acknowledged it."""
        key_bytes = key.encode() if isinstance(key, str) else key
        try:
            future = await self._producer.send(topic, value=value, key=key_bytes, headers=headers,
                                               partition=partition)
            if wait:
                metadata = await future
                RECORDS_PRODUCED.labels(topic=topic, producer=self.name).inc()
                return metadata
            future.add_done_callback(lambda f: self._count(topic, f))
            return future
        except Exception:
            PRODUCE_ERRORS.labels(topic=topic, producer=self.name).inc()
            raise

    def _count(self, topic: str, future) -> None:
        if future.cancelled() or future.exception() is not None:
            PRODUCE_ERRORS.labels(topic=topic, producer=self.name).inc()
            log.error("produce failed", extra={"shaftwatch_ids": {"topic": topic, "producer": self.name}})
        else:
            RECORDS_PRODUCED.labels(topic=topic, producer=self.name).inc()

    async def partitions_for(self, topic: str) -> set[int]:
        return await self._producer.partitions_for(topic)

    async def flush(self) -> None:
        await self._producer.flush()
