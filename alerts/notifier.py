"""Notifications: new and escalated incidents above a severity, to a webhook and/or an SMS
gateway over HTTP.

Delivery is at least once: each attempt carries an ``Idempotency-Key`` (incident, kind,
channel), failures are retried with exponential backoff, and the notification log in the
store suppresses a repeat once a delivery succeeded, also after a replay or a restart.
Silenced incidents are recorded but not notified.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import aiohttp
from prometheus_client import Counter

log = logging.getLogger("shaftwatch.notifier")
# Failed deliveries are what ops must hear about: deploy/prometheus/alerts.yml NotifierFailing.
NOTIFICATIONS_TOTAL = Counter("shaftwatch_notifications_total", "Notifications by channel and result "
                              "(sent, failed, silenced, skipped: already delivered)", ["channel", "result"])


@dataclass(frozen=True)
class Channel:
    name: str  # webhook, sms
    url: str
    token: str | None = None
    recipients: tuple[str, ...] = ()  # for the SMS gateway


def channels_from_config(settings) -> list[Channel]:
    out = []
    for c in settings.channels:
        token = os.environ.get(c.token_env) if c.token_env else None
        out.append(Channel(c.name, c.url, token, tuple(c.recipients)))
    return out


def message_for(incident: dict[str, Any], kind: str, console_url: str) -> dict[str, Any]:
    verb = "ESCALATED, still unacknowledged" if kind == "escalated" else "new"
    text = (f"[ShaftWatch] {incident['severity'].upper()} {verb}: {incident['summary']} "
            f"(score {incident['score']:.2f}) {console_url}/#/incidents/{incident['id']}")
    return {"incident_id": incident["id"], "kind": kind, "site_id": incident["site_id"],
            "severity": incident["severity"], "score": incident["score"], "summary": incident["summary"],
            "opened_at": incident["opened_at"], "text": text[:480]}


class DeliveryLog(Protocol):
    """What the notifier needs of the store: alerts.store.notification_log.NotificationLog."""

    def delivered(self, incident_id: str, kind: str, channel: str) -> bool: ...

    def record(self, incident_id: str, kind: str, channel: str, status: str, attempts: int, response: str) -> None: ...


class Notifier:
    def __init__(self, channels: list[Channel], store_call: Callable, deliveries: DeliveryLog, console_url: str,
                 max_attempts: int = 5, backoff_s: float = 0.5, timeout_s: float = 10.0):
        """``store_call(fn, *args)`` runs a (blocking) ``deliveries`` method off the event loop."""
        self.channels = channels
        self.store_call = store_call
        self.deliveries = deliveries
        self.console_url = console_url
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def notify(self, incident: dict[str, Any], kind: str) -> dict[str, str]:
        """Deliver to every channel; returns channel -> sent, skipped or failed."""
        results = {}
        for channel in self.channels:
            if incident.get("silenced_by") is not None:
                await self.store_call(self.deliveries.record, incident["id"], kind, channel.name,
                                      "silenced", 0, f"silence {incident['silenced_by']}")
                results[channel.name] = "silenced"
                continue
            if await self.store_call(self.deliveries.delivered, incident["id"], kind, channel.name):
                results[channel.name] = "skipped"  # already delivered: never twice
                continue
            status, attempts, response = await self._deliver(channel, message_for(incident, kind, self.console_url))
            await self.store_call(self.deliveries.record, incident["id"], kind, channel.name, status,
                                  attempts, response)
            results[channel.name] = status
        for channel, result in results.items():
            NOTIFICATIONS_TOTAL.labels(channel=channel, result=result).inc()
        return results

    async def _deliver(self, channel: Channel, message: dict[str, Any]) -> tuple[str, int, str]:
        body = dict(message)
        if channel.name == "sms":
            body = {"to": list(channel.recipients), "text": message["text"], "ref": message["incident_id"]}
        headers = {"Idempotency-Key": f"{message['incident_id']}:{message['kind']}:{channel.name}"}
        if channel.token:
            headers["Authorization"] = f"Bearer {channel.token}"
        last = ""
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    async with session.post(channel.url, json=body, headers=headers) as response:
                        text = await response.text()
                        if 200 <= response.status < 300:
                            log.info("notified", extra={"shaftwatch_ids": {
                                "incident_id": message["incident_id"], "channel": channel.name, "attempts": attempt}})
                            return "sent", attempt, text
                        last = f"HTTP {response.status}: {text[:200]}"
                        if 400 <= response.status < 500 and response.status not in (408, 429):
                            break  # the gateway refuses this message; retrying will not help
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    last = repr(exc)
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        log.error("notification failed", extra={"shaftwatch_ids": {
            "incident_id": message["incident_id"], "channel": channel.name, "error": last}})
        return "failed", attempt, last
