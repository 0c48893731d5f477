"""The Faust application, built from the configuration.

Importing this module loads and validates ``configs/`` (or ``SHAFTWATCH_CONFIG_DIR``); an
invalid config raises ConfigError naming file, line and key, before anything starts.
Topics live in ``streams.worker.topics``, tables in ``streams.worker.tables``, agents in
``streams.worker.agents``, timers in ``streams.worker.timers``, web pages in
``streams.worker.views``; ``streams.worker.run`` runs them.
"""

from __future__ import annotations

import logging
import os

import faust

from streams.config import ShaftWatchConfig, load_config
from streams.config.live import ConfigWatch
from streams.logs import ids, logging_config
from streams.worker import faust_fixes
from streams.worker.changelog import flush_state_at_commit


def create_app(cfg: ShaftWatchConfig) -> faust.App:
    settings = cfg.runtime.app
    web_port = int(os.environ.get("SHAFTWATCH_WORKER_WEB_PORT") or settings.worker_web_port)
    return faust.App(
        settings.id,
        broker=[f"kafka://{server.strip()}" for server in cfg.bootstrap_servers.split(",")],
        broker_credentials=cfg.kafka_security.faust_credentials(),  # None: plaintext
        store=settings.store,
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication,
        # Our topics are created by ShaftWatch at start-up with their exact settings
        # (streams.kafka.admin.ensure_topics); Faust declares only its own internal topics
        # (table changelogs, the assignor's leader topic).
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,  # acknowledged means written to every in-sync replica
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=web_port,
        datadir=str(cfg.data_dir / "faust" / f"worker-{web_port}"),
        logging_config=logging_config(cfg.runtime.log_level),
        # Tables are recovered from their changelog topics on start; on one worker this
        # replays at full speed, so no standby replicas are needed by default.
        table_standby_replicas=0,
        # State tables write their changed keys as one batch per partition at each commit
        # (streams.worker.changelog); with aiokafka's 16 kB default a batch held two meters'
        # state, and each further batch waited for the one before it to leave.
        producer_max_batch_size=512 * 1024,
        producer_linger=settings.producer_linger_ms / 1000,  # config.runtime.AppSettings says why
    )


faust_fixes.apply()
config: ShaftWatchConfig = load_config()
app: faust.App = create_app(config)
flush_state_at_commit(app)  # state tables write their changes at each offset commit and rebalance
# Every topic and table of the app has this many partitions (the config's one setting).
PARTITIONS: int = config.runtime.app.topics.partitions
# The thresholds in force, reloaded from thresholds.yaml while the worker runs (streams.worker.timers).
config_watch = ConfigWatch(config)


@app.on_partitions_assigned.connect
async def _log_assignment(sender, assigned, **kwargs) -> None:
    # Which input partitions this worker holds after each rebalance: what an operator (or a
    # fault test) needs to follow a partition from worker to worker. Where reading resumes
    # is known only once Faust has sought (after this signal): the power agent logs it with
    # its first readings. Changelog partitions are left out (recovery logs them).
    held = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned if not tp.topic.endswith("-changelog"))
    logging.getLogger("shaftwatch.worker").info("partitions assigned", extra=ids(partitions=held))
