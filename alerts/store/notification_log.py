"""The notification log: one row per incident, kind (opened, escalated) and channel, with
its delivery status, so a delivered notification is never sent again — also after a
replay or a restart (alerts.notifier reads and writes only this)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from alerts.store.schema import SYSTEM, notifications, reports_sent, write_audit


class NotificationLog:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def delivered(self, incident_id: str, kind: str, channel: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(notifications.c.id).where(
                notifications.c.incident_id == incident_id, notifications.c.kind == kind,
                notifications.c.channel == channel, notifications.c.status == "sent")).first() is not None

    def record(self, incident_id: str, kind: str, channel: str, status: str, attempts: int, response: str) -> None:
        """The outcome of a delivery (sent, failed, silenced), audited."""
        with self.engine.begin() as c:
            existing = c.execute(sa.select(notifications.c.id).where(
                notifications.c.incident_id == incident_id, notifications.c.kind == kind,
                notifications.c.channel == channel)).first()
            values = dict(status=status, attempts=attempts, at=time.time(), response=response[:2000])
            if existing:
                c.execute(notifications.update().where(notifications.c.id == existing.id).values(**values))
            else:
                c.execute(notifications.insert().values(incident_id=incident_id, kind=kind, channel=channel, **values))
            write_audit(c, incident_id, SYSTEM, f"notify_{status}", {"kind": kind, "channel": channel,
                                                                      "attempts": attempts})

    def of_incident(self, incident_id: str) -> list[dict]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.select(notifications).where(
                notifications.c.incident_id == incident_id))]


class ReportLog:
    """Reports sent (the weekly ledger list): one row per report, period and destination,
    so a restarted or second worker never sends the same week twice."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def sent(self, kind: str, period: str, destination: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(reports_sent.c.id).where(
                reports_sent.c.kind == kind, reports_sent.c.period == period,
                reports_sent.c.destination == destination, reports_sent.c.status == "sent")).first() is not None

    def record(self, kind: str, period: str, destination: str, status: str) -> None:
        with self.engine.begin() as c:
            c.execute(reports_sent.delete().where(reports_sent.c.kind == kind, reports_sent.c.period == period,
                                                  reports_sent.c.destination == destination))
            c.execute(reports_sent.insert().values(kind=kind, period=period, destination=destination,
                                                   status=status, sent_at=time.time()))
            write_audit(c, None, SYSTEM, f"report_{status}", {"kind": kind, "period": period,
                                                              "destination": destination})
