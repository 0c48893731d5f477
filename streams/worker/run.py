"""Worker entry point: create the topics if needed, then run the Faust worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from streams.kafka.admin import ensure_topics, topic_plan


def prepare_store(config) -> None:
    """Schema up to date and the shaft ledger in sync with configs/, before any signal."""
    from alerts.store import AlertStore

    AlertStore(config.store_url).migrate(ledger_rows(config))


def ledger_rows(config) -> list[dict]:
    return [{"id": s.id, "name": s.name, "township": s.township, "lon": s.lon, "lat": s.lat, "status": s.status,
             "sealed_on": s.sealed_on, "responsible": f"{s.responsible.name} ({s.responsible.role})", "unit": s.unit}
            for s in config.sites.sites]


def run_worker() -> None:
    # Importing registers the app, its topics, tables, agents and pages.
    from streams.worker import agents, loop_probe, timers, views  # noqa: F401
    from streams.worker.app import app, config

    Path(app.conf.datadir).mkdir(parents=True, exist_ok=True)
    prepare_store(config)
    asyncio.run(ensure_topics(config.bootstrap_servers, topic_plan(config), security=config.kafka_security))
    worker = faust.Worker(app, loglevel=config.runtime.log_level, logging_config=app.conf.logging_config,
                          redirect_stdouts=False)
    worker.execute_from_commandline()
