"""Worker timers that belong to no agent."""

from __future__ import annotations

from streams.worker.app import app, config, config_watch

if config.runtime.config_reload_s > 0:
    @app.timer(interval=config.runtime.config_reload_s, name="config-reload")
    async def reload_config():
        """Apply a changed thresholds.yaml; refuse an invalid change (streams.config.live)."""
        await app.loop.run_in_executor(None, config_watch.check)
