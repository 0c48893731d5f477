"""The shaft ledger (台账) in the store: the sites from configs/, and each site's history
(registered, status changes, confirmed incidents)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from alerts.store.schema import SYSTEM, site_events, sites


class Ledger:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def sync(self, ledger: list[dict[str, Any]]) -> None:
        """Sites from configs/ into the ledger (insert new, update changed; history is kept)."""
        with self.engine.begin() as c:
            existing = {r.id: r for r in c.execute(sa.select(sites))}
            for site in ledger:
                row = existing.get(site["id"])
                if row is None:
                    c.execute(sites.insert().values(**site))
                    c.execute(site_events.insert().values(site_id=site["id"], at=time.time(), kind="registered",
                                                          note=f"status {site['status']}", actor=SYSTEM))
                elif dict(row._mapping) != site:
                    c.execute(sites.update().where(sites.c.id == site["id"]).values(**site))
                    if row.status != site["status"]:
                        c.execute(site_events.insert().values(
                            site_id=site["id"], at=time.time(), kind="status_changed",
                            note=f"{row.status} -> {site['status']}", actor=SYSTEM))

    def sites(self) -> list[dict]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.select(sites).order_by(sites.c.id))]

    def history(self, site_id: str) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(site_events).where(site_events.c.site_id == site_id)
                             .order_by(site_events.c.at))
            return [dict(r._mapping) for r in rows]
