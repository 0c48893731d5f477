"""The alert store: SQLAlchemy Core, a SQLite file by default, PostgreSQL by URL; the
schema is created and upgraded by the Alembic migrations in alerts/migrations.

One module per concept, each a small class on the same engine:

- ``incidents`` — fusion of signals into incidents, the lifecycle, quiet-close and
  escalation, reading incidents back;
- ``silences`` — time-boxed matchers with who set them and why;
- ``notification_log`` — what was delivered to which channel, so it is never sent twice;
- ``ledger`` — the shaft ledger (sites) and each site's history;
- ``accounts`` — people's accounts, sessions and login throttling;
- ``patrol`` — visits, the problems they find and their close-out, coverage;
- ``tipoffs`` — public tip-offs, their verification and rewards;
- ``fence_subscriptions`` — the carriers' CAMARA geofencing subscriptions for the watchlist;
- ``schema`` — the tables, the engine, the audit trail.

Every method is synchronous and short: workers and the server call them from an executor
thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from alerts.store.accounts import Accounts
from alerts.store.fence_subscriptions import FenceSubscriptions
from alerts.store.incidents import Incidents, published
from alerts.store.ledger import Ledger
from alerts.store.notification_log import NotificationLog, ReportLog
from alerts.store.patrol import Patrols
from alerts.store.schema import Conflict, NotFound, StoreError, create_engine
from alerts.store.silences import Silences
from alerts.store.tipoffs import TipOffs

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class AlertStore:
    """The store's parts on one database: ``incidents``, ``silences``, ``notifications``,
    ``ledger``, ``accounts``, ``patrols``, ``tipoffs`` and ``fence_subscriptions``."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        self.incidents = Incidents(self.engine)
        self.silences = Silences(self.engine)
        self.notifications = NotificationLog(self.engine)
        self.reports = ReportLog(self.engine)
        self.ledger = Ledger(self.engine)
        self.accounts = Accounts(self.engine)
        self.patrols = Patrols(self.engine)
        self.tipoffs = TipOffs(self.engine)
        self.fence_subscriptions = FenceSubscriptions(self.engine)

    def migrate(self, ledger: list[dict] | None = None) -> None:
        """Create or upgrade the schema to the newest migration (idempotent) and, given the
        ``ledger`` of configs/sites.yaml, bring the shaft ledger in line with it
        (``Ledger.sync``). Several processes may start at once on a new store (two workers
        and the server): they do this one at a time, so each finds what the one before it
        did instead of creating the same tables or sites again."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._startup_lock():
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
            if ledger is not None:
                self.ledger.sync(ledger)

    @contextlib.contextmanager
    def _startup_lock(self):
        """One process at a time: an advisory lock on PostgreSQL; for a SQLite file an
        exclusive lock on a file beside it (SQLite's own locks do not cover a
        check-then-create that spans statements)."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT pg_advisory_lock(7238001)")
                try:
                    yield
                finally:
                    connection.exec_driver_sql("SELECT pg_advisory_unlock(7238001)")
            return
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


__all__ = ["AlertStore", "Conflict", "NotFound", "StoreError", "published"]
