"""Silences (as Alertmanager has them): time-boxed matchers on site, source kind and
source id, each with who set it and why. An incident whose evidence a silence covers is
still recorded, marked with the silence, and not notified (alerts.store.incidents)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from alerts.store.schema import NotFound, StoreError, silences, write_audit


class Silences:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def add(self, *, created_by: str, reason: str, starts_at: float, ends_at: float, site_id: str | None = None,
            source_kind: str | None = None, source_id: str | None = None) -> int:
        if not (site_id or source_kind or source_id):
            raise StoreError("a silence needs at least one matcher: site_id, source_kind or source_id")
        if ends_at <= starts_at:
            raise StoreError("a silence must end after it starts")
        if not reason.strip() or not created_by.strip():
            raise StoreError("a silence needs a reason and who set it")
        with self.engine.begin() as c:
            result = c.execute(silences.insert().values(
                site_id=site_id, source_kind=source_kind, source_id=source_id, starts_at=starts_at, ends_at=ends_at,
                created_by=created_by, reason=reason, created_at=time.time()))
            silence_id = result.inserted_primary_key[0]
            write_audit(c, None, created_by, "silence_added", {"silence_id": silence_id, "site_id": site_id,
                                                               "source_kind": source_kind, "source_id": source_id,
                                                               "reason": reason, "ends_at": ends_at})
            return silence_id

    def end(self, silence_id: int, ended_by: str, now: float | None = None) -> dict:
        """End a silence early (now), audited; a silence already over is left as it was."""
        now = time.time() if now is None else now
        with self.engine.begin() as c:
            row = c.execute(sa.select(silences).where(silences.c.id == silence_id)).first()
            if row is None:
                raise NotFound(f"no silence {silence_id}")
            if row.ends_at > now:
                c.execute(silences.update().where(silences.c.id == silence_id).values(ends_at=max(now, row.starts_at)))
                write_audit(c, None, ended_by, "silence_ended", {"silence_id": silence_id, "was_until": row.ends_at})
            return dict(c.execute(sa.select(silences).where(silences.c.id == silence_id)).first()._mapping)

    def active(self, now: float | None = None) -> list[dict]:
        """Silences not yet ended at ``now`` (all of them when None), by start."""
        with self.engine.connect() as c:
            query = sa.select(silences).order_by(silences.c.starts_at)
            if now is not None:
                query = query.where(silences.c.ends_at > now)
            return [dict(r._mapping) for r in c.execute(query)]
