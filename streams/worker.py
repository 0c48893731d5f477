"""Worker entry point: create the topics if needed, then run the Faust worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from .broker import ensure_topics, topic_plan


def run_worker() -> None:
    # Importing registers the app, its topics, tables, agents and pages.
    from . import agents, views  # noqa: F401
    from .app import app, config

    Path(app.conf.datadir).mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(config.bootstrap_servers, topic_plan(config)))
    worker = faust.Worker(app, loglevel=config.runtime.log_level, logging_config=app.conf.logging_config,
                          redirect_stdouts=False)
    worker.execute_from_commandline()
