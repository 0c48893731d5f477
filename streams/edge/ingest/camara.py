"""CAMARA Device Geofencing notifications (GSMA CAMARA, geofencing-subscriptions): the
CloudEvents a carrier sends to the sink of each subscription that ``shaftwatch fences
publish`` made (streams.edge.fence_publisher).

- area-entered / area-left become fence rows. The spec sends the device object only if the
  subscription named it, and a carrier may leave it out; the subscription id then tells
  whose pseudonym and which zone (alerts.store.fence_subscriptions). An event with neither
  a device nor a subscription we made cannot be placed: refused.
- subscription-started / -updated / -ended are not rows: they are acknowledged and kept in
  the store. An ended subscription that we did not delete means the fence went silent for
  that person: the store marks it ended and audits it, the console shows it to ops and the
  metric ``shaftwatch_fence_subscriptions_ended_total`` counts it, until ops publish again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from streams.contract.records import RecordError
from streams.edge.ingest.parsing import IngestError, Rows

PREFIX = "org.camaraproject.geofencing-subscriptions.v0."
AREA_EVENTS = {PREFIX + "area-entered": "enter", PREFIX + "area-left": "exit"}
LIFECYCLE_EVENTS = {PREFIX + "subscription-started": "started", PREFIX + "subscription-updated": "updated",
                    PREFIX + "subscription-ended": "ended"}
CONTENT_TYPES = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")

FENCE_SUBSCRIPTIONS_ENDED = Counter(
    "shaftwatch_fence_subscriptions_ended_total",
    "Carrier geofencing subscriptions ended by the carrier (that fence is silent until ops publish again)",
    ["carrier", "reason"])


@dataclass(frozen=True)
class Notice:
    """A subscription lifecycle event: started, updated (with its reason) or ended."""

    kind: str
    subscription_id: str
    reason: str | None = None
    description: str | None = None


def read_event(event: Any) -> dict | Notice:
    """One CloudEvent -> a fence row (with ``subscription_id``, and ``device_id`` when the
    event has a device) or a Notice; RecordError says what is wrong."""
    if not isinstance(event, dict):
        raise RecordError("a notification must be a JSON object (a CloudEvent)")
    kind = event.get("type")
    data = event.get("data")
    if kind not in AREA_EVENTS and kind not in LIFECYCLE_EVENTS:
        raise RecordError(f"event type {kind!r} is not a CAMARA geofencing notification")
    if not isinstance(data, dict):
        raise RecordError("data is missing")
    subscription_id = data.get("subscriptionId")
    if subscription_id is not None:
        subscription_id = str(subscription_id)
    if kind in LIFECYCLE_EVENTS:
        if not subscription_id:
            raise RecordError(f"{LIFECYCLE_EVENTS[kind]} event without a subscriptionId")
        reason = data.get({"started": "initiationReason", "updated": "updateReason",
                           "ended": "terminationReason"}[LIFECYCLE_EVENTS[kind]])
        description = data.get("terminationDescription") or data.get("updateDescription") \
            or data.get("initiationDescription")
        return Notice(LIFECYCLE_EVENTS[kind], subscription_id, reason, description)
    device = data.get("device") or {}
    device_id = (device.get("phoneNumber") or device.get("networkAccessIdentifier")
                 or (device.get("ipv4Address") or {}).get("publicAddress") or device.get("ipv6Address"))
    if not device_id and not subscription_id:
        raise RecordError("an area event needs a device or a subscriptionId")
    area = data.get("area") or {}
    if area.get("areaType") != "CIRCLE":
        raise RecordError(f"area type {area.get('areaType')!r} is not supported (CIRCLE is)")
    center = area.get("center") or {}
    row = {"device_kind": "phone", "ts": event.get("time"), "lon": center.get("longitude"),
           "lat": center.get("latitude"), "accuracy_m": area.get("radius"), "event": AREA_EVENTS[kind],
           "subscription_id": subscription_id}
    if device_id:
        row["device_id"] = device_id
    return row


def read_body(body: bytes, content_type: str) -> list[tuple[dict | Notice | None, bytes, str | None]]:
    """A body of one CloudEvent or a batch of them -> (row or Notice, original bytes, problem) each."""
    if content_type not in CONTENT_TYPES:
        raise IngestError(415, "send CloudEvents as application/cloudevents+json or application/json")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # as in parsing.parse_rows
        raise IngestError(400, f"body is not JSON that can be read: {type(exc).__name__}: {exc}") from None
    out = []
    for event in data if isinstance(data, list) else [data]:
        raw = json.dumps(event, ensure_ascii=False).encode()
        try:
            out.append((read_event(event), raw, None))
        except RecordError as exc:
            out.append((None, raw, str(exc)))
    return out


class CamaraIntake:
    """What ingest does with a carrier's CAMARA events beyond ordinary rows: lifecycle
    notices into the store, and area events without a device placed by their subscription.
    ``subscriptions`` is alerts.store.fence_subscriptions.FenceSubscriptions (blocking: run
    in a thread here)."""

    def __init__(self, subscriptions):
        self.subscriptions = subscriptions

    async def rows(self, carrier: str, body: bytes, content_type: str) -> tuple[Rows, dict]:
        """-> fence rows (and refusals) for validation, and for the answer how many notices
        were acknowledged."""
        events = read_body(body, content_type)
        notices = [e for e, _, _ in events if isinstance(e, Notice)]
        wanted = [e["subscription_id"] for e, _, _ in events if isinstance(e, dict) and e["subscription_id"]]
        known = await asyncio.to_thread(self.subscriptions.lookup, carrier, wanted) if wanted else {}
        for notice in notices:
            await asyncio.to_thread(self._apply, carrier, notice)
        rows: Rows = []
        for event, raw, problem in events:
            if isinstance(event, Notice):
                continue
            if event is not None:
                event, problem = self._placed(event, known)
            rows.append((event, raw, problem))
        return rows, {"acknowledged": len(notices)}

    @staticmethod
    def _placed(row: dict, known: dict[str, dict]) -> tuple[dict | None, str | None]:
        """The row with its subscription's pseudonym and zone, or why it cannot be placed."""
        subscription = known.get(row.pop("subscription_id") or "")
        if subscription is not None:
            row["zone_id"] = subscription["zone_id"]
            if "device_id" not in row:
                row["subscription_pid"] = subscription["device_pid"]
        elif "device_id" not in row:
            return None, "area event without a device, and its subscriptionId is not one we made " \
                         "(shaftwatch fences publish): whose it is cannot be told"
        return row, None

    @staticmethod
    def pseudonymized(fields: dict, pseudonymize_row) -> dict:
        """A row placed by its subscription already has its pseudonym; any other is
        pseudonymized as every carrier row is. (Only rows built by ``read_event`` come here,
        so a body cannot bring its own pseudonym.)"""
        if "subscription_pid" in fields:
            fields = dict(fields)
            fields["device_pid"] = fields.pop("subscription_pid")
            return fields
        return pseudonymize_row(fields)

    def _apply(self, carrier: str, notice: Notice) -> None:
        if notice.kind == "ended":
            row = self.subscriptions.carrier_ended(carrier, notice.subscription_id, notice.reason or "UNKNOWN",
                                                   notice.description)
            if row is not None and row["status"] not in ("deleted", "replaced", "ended") \
                    and notice.reason != "SUBSCRIPTION_DELETED":
                FENCE_SUBSCRIPTIONS_ENDED.labels(carrier=carrier, reason=notice.reason or "UNKNOWN").inc()
        elif notice.kind == "updated" and notice.reason in ("SUBSCRIPTION_ACTIVE", "SUBSCRIPTION_INACTIVE"):
            self.subscriptions.set_status(carrier, notice.subscription_id,
                                          "active" if notice.reason == "SUBSCRIPTION_ACTIVE" else "inactive")
        elif notice.kind == "started":
            self.subscriptions.set_status(carrier, notice.subscription_id, "active")

