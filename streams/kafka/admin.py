"""Topic administration: the topics of the design with their settings, created where they
are missing; and the one question every health check asks Kafka."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streams.config import ShaftWatchConfig
from streams.contract.topics import FRAMES, TOPICS
from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.logs import ids

log = logging.getLogger("shaftwatch.admin")


class TopicError(RuntimeError):
    pass


async def metadata_ok(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
    """Returns when Kafka answers a metadata request; raises otherwise."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **security.client_args())
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def topic_plan(cfg: ShaftWatchConfig, replication: int | None = None) -> list[NewTopic]:
    """Every topic of the design with its partitions, replication (the config's, unless
    given) and config."""
    t = cfg.runtime.app.topics
    replication = replication or t.replication
    retention_ms = str(t.retention_hours * 3600 * 1000)
    topics = []
    for spec in TOPICS:
        configs = {"cleanup.policy": "compact"} if spec.compacted else {"retention.ms": retention_ms}
        # Frames are big and only useful while fresh: keep them an hour.
        if spec is FRAMES:
            configs["retention.ms"] = str(3600 * 1000)
            configs["max.message.bytes"] = str(8 * 1024 * 1024)
        topics.append(NewTopic(cfg.topic(spec.name), t.partitions, replication, topic_configs=configs))
    return topics


async def ensure_topics(bootstrap: str, topics: list[NewTopic], retry_for_s: float = 60.0,
                        security: KafkaSecurity = PLAINTEXT) -> list[str]:
    """Create the missing topics; return the names created. Existing ones are kept as they are.

    A node of the cluster that is down but still in the metadata (Kafka fences it after its
    session timeout) answers nothing: such retriable errors are retried for ``retry_for_s``,
    so a worker started while a node is down waits for the cluster instead of exiting."""
    deadline = time.monotonic() + retry_for_s
    while True:
        try:
            return await _ensure_topics(bootstrap, topics, security)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() >= deadline:
                raise
            log.warning("Kafka not ready for topic creation; retrying", extra=ids(error=repr(exc)))
            await asyncio.sleep(1.0)


async def _ensure_topics(bootstrap: str, topics: list[NewTopic], security: KafkaSecurity) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **security.client_args())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in _topic_errors(response):
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a racing worker made it)
                    raise TopicError(f"could not create topic {name}: error {code} {message}")
        return [t.name for t in missing]
    finally:
        await admin.close()


def _topic_errors(response) -> list[tuple[str, int, str]]:
    out = []
    for item in response.topic_errors:
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else ""
        out.append((name, code, message))
    return out
