"""Changed configs, picked up by a running worker without a restart.

The worker looks at configs/ every ``runtime.config_reload_s`` seconds (streams.worker.timers).
A change is loaded and validated whole, as at start; a config with a problem is refused
(logged with file, line and key, counted, shown on /health) and the running one stays in
force: a bad edit never takes down good detection. A valid ``thresholds.yaml`` is applied
at once: agents ask ``ConfigWatch.thresholds.at(ts)`` for each record, which also picks
the night profile by the record's own (local) time. The other files shape topics,
tables, zone indexes and camera pipelines; their changes are reported as needing a
restart and are not applied.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import Counter

from streams.config import SECTION_FILES, ConfigError, ShaftWatchConfig, ThresholdsFile, load_config
from streams.logs import ids

log = logging.getLogger("shaftwatch.config")
CONFIG_RELOADS_TOTAL = Counter("shaftwatch_config_reloads_total", "Config changes seen by a running worker", ["result"])


def _signature(directory: Path) -> tuple:
    """What changes when a config file is saved: each file's size and modification time."""
    out = []
    for filename, _ in SECTION_FILES.values():
        try:
            stat = (directory / filename).stat()
            out.append((filename, stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            out.append((filename, None, None))
    return tuple(out)


class Thresholds:
    """The thresholds in force, in plain attributes, since they are asked for every record:
    ``at(ts)`` is the day's or the night profile's (by local time), ``clock`` the clock."""

    __slots__ = ("day", "night", "clock")

    def __init__(self, file: ThresholdsFile):
        self.day = file
        self.night = file.at_night()
        self.clock = file.clock()

    def at(self, ts: float) -> ThresholdsFile:
        return self.night if self.clock.is_night(ts) else self.day


class ConfigWatch:
    def __init__(self, running: ShaftWatchConfig):
        self.directory = Path(running.config_dir)
        self.running = running
        self.thresholds = Thresholds(running.thresholds)
        self.signature = _signature(self.directory)
        self.refused: list[str] = []  # the problems of the last change refused, if it was
        self.restart_needed: list[str] = []  # files changed on disk but not applied

    def check(self) -> str | None:
        """Look once. Blocking (reads and validates files): run it off the event loop.
        Returns None (nothing changed), "applied", "restart_needed" or "refused"."""
        signature = _signature(self.directory)
        if signature == self.signature:
            return None
        self.signature = signature
        try:
            new = load_config(self.directory)
        except ConfigError as exc:
            self.refused = [str(p) for p in exc.problems]
            CONFIG_RELOADS_TOTAL.labels(result="refused").inc()
            log.error("config change refused; the running config stays in force",
                      extra=ids(problems=self.refused))
            return "refused"
        self.refused = []
        changed = [name for name in SECTION_FILES if getattr(new, name) != getattr(self.running, name)]
        if "thresholds" in changed:
            self.thresholds = Thresholds(new.thresholds)  # one reference swapped: agents see old or new, whole
            self.running = self.running.model_copy(update={"thresholds": new.thresholds})
            log.warning("thresholds.yaml applied", extra=ids(directory=str(self.directory)))
        # Compared with what runs, which keeps its other files: a change waits until a restart.
        self.restart_needed = [SECTION_FILES[name][0] for name in changed if name != "thresholds"]
        if self.restart_needed:
            CONFIG_RELOADS_TOTAL.labels(result="restart_needed").inc()
            log.warning("config files changed that apply only after a restart",
                        extra=ids(files=self.restart_needed))
            return "restart_needed"
        if not changed:
            return None  # saved again, same content
        CONFIG_RELOADS_TOTAL.labels(result="applied").inc()
        return "applied"

    def status(self) -> dict:
        """For /health: what is in force and what is waiting."""
        return {"directory": str(self.directory), "refused": self.refused, "restart_needed": self.restart_needed}
