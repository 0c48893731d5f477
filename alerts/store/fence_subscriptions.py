"""The carriers' CAMARA geofencing subscriptions made for the watchlist's key persons
(``shaftwatch fences publish``, streams.edge.fence_publisher).

A row keeps what an event needs to be read without a device object (the spec sends the
device only if the subscription named it, and a carrier may leave it out): the carrier's
subscription id -> the device's pseudonym and the zone. The clear number it was made with
is never stored.

A subscription watches while it is ``requested``, ``active`` or ``inactive``. One the
carrier ended (expired, network terminated, too many events, unprocessable) is ``ended``:
that fence is silent for that person until ops publish again, so it is audited and shown
to ops. One we ended ourselves is ``deleted`` (off the watchlist, zone gone) or
``replaced`` (renewed by a newer one).
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from alerts.store.schema import fence_subscriptions, write_audit

WATCHING = ("requested", "active", "inactive")
ENDED_BY_US = ("deleted", "replaced")
# CAMARA's subscription-updated reasons -> our status.
UPDATE_STATUS = {"SUBSCRIPTION_ACTIVE": "active", "SUBSCRIPTION_INACTIVE": "inactive"}


class FenceSubscriptions:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def record(self, *, carrier: str, subscription_id: str, device_pid: str, zone_id: str, circle: dict,
               event: str, expires_at: float | None, status: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as c:
            c.execute(fence_subscriptions.insert().values(
                carrier=carrier, subscription_id=subscription_id, device_pid=device_pid, zone_id=zone_id,
                circle=circle, event=event, created_at=now, expires_at=expires_at, status=status, updated_at=now))

    def watching(self) -> list[dict]:
        """Subscriptions still watching, oldest first."""
        return self._select(fence_subscriptions.c.status.in_(WATCHING))

    def current(self, carrier: str) -> list[dict]:
        """A carrier's subscriptions that publishing must reckon with: those watching and
        those the carrier ended (a renewal replaces both), oldest first."""
        return self._select(fence_subscriptions.c.carrier == carrier,
                            fence_subscriptions.c.status.in_(WATCHING + ("ended",)))

    def _select(self, *where) -> list[dict]:
        with self.engine.connect() as c:
            query = sa.select(fence_subscriptions).where(*where).order_by(fence_subscriptions.c.id)
            return [dict(r._mapping) for r in c.execute(query)]

    def lookup(self, carrier: str, subscription_ids: list[str]) -> dict[str, dict]:
        """subscription id -> its row, for the ids this carrier knows (any status: an event
        may arrive just after a renewal replaced its subscription)."""
        if not subscription_ids:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(sa.select(fence_subscriptions).where(
                fence_subscriptions.c.carrier == carrier,
                fence_subscriptions.c.subscription_id.in_(sorted(set(subscription_ids)))))
            return {r.subscription_id: dict(r._mapping) for r in rows}

    def set_status(self, carrier: str, subscription_id: str, status: str, now: float | None = None) -> None:
        """A status we decided (deleted, replaced) or the carrier told (active, inactive)."""
        now = time.time() if now is None else now
        with self.engine.begin() as c:
            c.execute(fence_subscriptions.update().where(
                fence_subscriptions.c.carrier == carrier, fence_subscriptions.c.subscription_id == subscription_id,
                fence_subscriptions.c.status.notin_(("ended",) + ENDED_BY_US) if status in WATCHING else sa.true(),
            ).values(status=status, updated_at=now))

    def carrier_ended(self, carrier: str, subscription_id: str, reason: str, note: str | None,
                      now: float | None = None) -> dict | None:
        """The carrier says the subscription ended. Unless we ended it ourselves (we deleted
        it: SUBSCRIPTION_DELETED), the fence went silent for that person: ``ended``, audited.
        Returns the row as it was (None if unknown)."""
        now = time.time() if now is None else now
        with self.engine.begin() as c:
            row = c.execute(sa.select(fence_subscriptions).where(
                fence_subscriptions.c.carrier == carrier,
                fence_subscriptions.c.subscription_id == subscription_id)).first()
            if row is None:
                return None
            row = dict(row._mapping)
            if row["status"] in ENDED_BY_US or row["status"] == "ended":
                return row
            if reason == "SUBSCRIPTION_DELETED":  # deleted by the requester: by us, when publishing
                c.execute(fence_subscriptions.update().where(fence_subscriptions.c.id == row["id"]).values(
                    status="deleted", ended_reason=reason, updated_at=now))
                return row
            c.execute(fence_subscriptions.update().where(fence_subscriptions.c.id == row["id"]).values(
                status="ended", ended_reason=reason, ended_note=note, updated_at=now))
            write_audit(c, None, f"carrier:{carrier}", "fence_subscription_ended",
                        {"subscription_id": subscription_id, "zone_id": row["zone_id"], "event": row["event"],
                         "device_pid": row["device_pid"], "reason": reason})
            return row

    def lapsed(self, now: float | None = None) -> list[dict]:
        """Fences silent for someone on the watchlist: ended by the carrier, or past their
        expiry without word (the carrier's subscription-ended event may never come)."""
        now = time.time() if now is None else now
        t = fence_subscriptions
        return self._select(sa.or_(t.c.status == "ended", sa.and_(t.c.status.in_(WATCHING), t.c.expires_at.is_not(None),
                                                                 t.c.expires_at <= now)))

    def overview(self, now: float, renew_within_s: float) -> dict:
        """What ops see: counts per carrier and status, what lapsed, what expires soon."""
        with self.engine.connect() as c:
            counts = c.execute(sa.select(fence_subscriptions.c.carrier, fence_subscriptions.c.status,
                                         sa.func.count()).group_by(fence_subscriptions.c.carrier,
                                                                   fence_subscriptions.c.status))
            by_carrier: dict[str, dict[str, int]] = {}
            for carrier, status, n in counts:
                by_carrier.setdefault(carrier, {})[status] = n
        expiring = [r for r in self.watching()
                    if r["expires_at"] is not None and now < r["expires_at"] <= now + renew_within_s]
        return {"counts": by_carrier, "lapsed": self.lapsed(now), "expiring": expiring}
