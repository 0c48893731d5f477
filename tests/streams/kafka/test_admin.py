"""Topic administration on the real broker: the topics of the design with their settings."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import isolated_config


def test_topics_are_created_as_designed(kafka_bootstrap, tmp_path):
    cfg = load_config(isolated_config(tmp_path, "topics", partitions=3))
    plan = topic_plan(cfg)
    created = asyncio.run(ensure_topics(kafka_bootstrap, plan))
    assert sorted(created) == sorted(cfg.topic(n) for n in
                                     ["frames", "meter-readings", "fence-pings", "fence-presence", "signals", "alerts",
                                      "dead-letters"])
    assert asyncio.run(ensure_topics(kafka_bootstrap, plan)) == []  # idempotent

    async def describe():
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            meta = await admin.describe_topics([cfg.topic("signals"), cfg.topic("alerts")])
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, cfg.topic("alerts"))])
            return meta, configs
        finally:
            await admin.close()

    meta, configs = asyncio.run(describe())
    assert all(len(t["partitions"]) == 3 for t in meta)
    entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"
