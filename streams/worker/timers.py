"""Worker timers that belong to no agent."""

from __future__ import annotations

import logging
import os
import time

from alerts.reports import send_weekly, week_of
from alerts.store import AlertStore
from streams.logs import ids
from streams.worker.app import app, config, config_watch

log = logging.getLogger("shaftwatch.reports")
WEEKLY_CHECK_S = 600.0

if config.runtime.config_reload_s > 0:
    @app.timer(interval=config.runtime.config_reload_s, name="config-reload")
    async def reload_config():
        """Apply a changed thresholds.yaml; refuse an invalid change (streams.config.live)."""
        await app.loop.run_in_executor(None, config_watch.check)


_weekly = config.runtime.reports.weekly
if _weekly.webhook_url or _weekly.mail:
    _store = AlertStore(config.store_url)

    @app.timer(interval=WEEKLY_CHECK_S, on_leader=True, name="weekly-report")
    async def weekly_report():
        """On the configured local weekday, from the configured hour, send last week's
        ledger list to the webhook and/or the mail relay, once per destination (the store
        remembers what was sent; a failed destination is tried again at the next check)."""
        now = time.time()
        clock = config_watch.thresholds.clock
        local = clock.local(now)
        if local.tm_wday + 1 != _weekly.weekday or local.tm_hour < _weekly.hour:
            return
        week = week_of(now - 7 * 86400, clock)  # the last whole week
        token = os.environ.get(_weekly.webhook_token_env) if _weekly.webhook_token_env else None
        results = await app.loop.run_in_executor(
            None, lambda: send_weekly(_store, week, clock, config.sites.county, config.sites.patrol.weekly_visits,
                                      _weekly.webhook_url, token, _weekly.mail))
        if any(status != "skipped" for status in results.values()):
            log.info("weekly report", extra=ids(week=week, results=results))
