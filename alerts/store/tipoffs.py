"""Public tip-offs (举报) in the store: taken by the duty officer or pushed by a hotline
system, verified, and rewarded.

    verification:  received -> verifying -> verified | unfounded
    reward:        none -> proposed (an amount) -> approved -> paid

The reporter's contact is stored sealed (``alerts.sealing``): the store never holds it in
clear, and the console opens it only for roles that need it. Each step says who and when
and is audited; a verified tip-off becomes evidence on its site's incident (its signal id
is kept here).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from alerts.store.schema import NotFound, StoreError, advance, sites, tipoffs, write_audit

VERIFY = {"start_verifying": ("received", "verifying"), "verify": ("verifying", "verified"),
          "unfounded": ("verifying", "unfounded")}
REWARD = {"propose": ("none", "proposed"), "approve": ("proposed", "approved"), "pay": ("approved", "paid")}


class TipOffs:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def receive(self, *, channel: str, received_by: str, text: str, site_id: str | None = None,
                lon: float | None = None, lat: float | None = None, photos: list[str] | None = None,
                contact_sealed: str | None = None, at: float | None = None) -> dict:
        if channel not in ("console", "hotline"):
            raise StoreError("channel is console or hotline")
        if not text.strip():
            raise StoreError("a tip-off needs what the reporter said")
        if site_id is None and (lon is None or lat is None):
            raise StoreError("a tip-off needs a site or a position (lon, lat)")
        with self.engine.begin() as c:
            if site_id is not None and c.execute(sa.select(sites.c.id).where(sites.c.id == site_id)).first() is None:
                raise StoreError(f"no site {site_id}")
            tip_id = c.execute(tipoffs.insert().values(
                received_at=at or time.time(), channel=channel, received_by=received_by, site_id=site_id, lon=lon,
                lat=lat, text=text.strip(), photos=photos or [], contact_sealed=contact_sealed, state="received",
                reward_state="none")).inserted_primary_key[0]
            write_audit(c, None, received_by, "tipoff_received", {"tipoff_id": tip_id, "channel": channel,
                                                                  "site_id": site_id})
            return self._row(c, tip_id)

    def all(self, state: str | None = None, since: float = 0.0, until: float = float("inf")) -> list[dict]:
        query = (sa.select(tipoffs).where(tipoffs.c.received_at >= since, tipoffs.c.received_at < until)
                 .order_by(tipoffs.c.received_at.desc()))
        if state:
            query = query.where(tipoffs.c.state == state)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def get(self, tip_id: int) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(tipoffs).where(tipoffs.c.id == tip_id)).first()
            return dict(row._mapping) if row else None

    def verification(self, tip_id: int, step: str, actor: str, note: str = "", site_id: str | None = None) -> dict:
        """start_verifying, verify (a site must be known by then) or unfounded."""
        def values_for(row: dict) -> dict[str, Any]:
            values: dict[str, Any] = {"site_id": site_id} if site_id is not None else {}
            if step in ("verify", "unfounded"):
                if not note.strip():
                    raise StoreError(f"{step} needs a note: what the patrol found")
                values.update(verified_by=actor, verified_at=time.time(), verification_note=note.strip())
            if step == "verify" and not (site_id or row["site_id"]):
                raise StoreError("a verified tip-off needs its site")
            return values

        with self.engine.begin() as c:
            _, values = advance(c, tipoffs, tip_id, "state", VERIFY, step, "tip-off", values_for)
            write_audit(c, None, actor, f"tipoff_{values['state']}", {"tipoff_id": tip_id, "note": note})
            return self._row(c, tip_id)

    def reward(self, tip_id: int, step: str, actor: str, yuan: int | None = None) -> dict:
        """propose (an amount, for a verified tip-off), approve (by someone other than who
        proposed it), pay."""
        def values_for(row: dict) -> dict[str, Any]:
            if step == "propose":
                if row["state"] != "verified":
                    raise StoreError("only a verified tip-off is rewarded")
                if not isinstance(yuan, int) or yuan <= 0:
                    raise StoreError("propose an amount in yuan (a whole number above 0)")
                return {"reward_yuan": yuan, "reward_proposed_by": actor}
            if step == "approve":
                if actor == row["reward_proposed_by"]:
                    raise StoreError("a reward is approved by someone other than who proposed it")
                return {"reward_approved_by": actor}
            return {"reward_paid_at": time.time()}

        with self.engine.begin() as c:
            row, values = advance(c, tipoffs, tip_id, "reward_state", REWARD, step, "reward", values_for)
            write_audit(c, None, actor, f"reward_{values['reward_state']}",
                        {"tipoff_id": tip_id, "yuan": values.get("reward_yuan", row["reward_yuan"])})
            return self._row(c, tip_id)

    def link_signal(self, tip_id: int, signal_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(tipoffs.update().where(tipoffs.c.id == tip_id).values(signal_id=signal_id))

    def _row(self, c, tip_id: int) -> dict:
        row = c.execute(sa.select(tipoffs).where(tipoffs.c.id == tip_id)).first()
        if row is None:
            raise NotFound(f"no tip-off {tip_id}")
        return dict(row._mapping)
