"""CAMARA Device Geofencing notifications (GSMA CAMARA): CloudEvents "area entered" and
"area left" for a circle area, as fence rows. That is the contract carriers publish."""

from __future__ import annotations

import json
from typing import Any

from streams.contract.records import RecordError
from streams.edge.ingest.feeds import Feed
from streams.edge.ingest.parsing import IngestError, Rows

CAMARA_EVENTS = {
    "org.camaraproject.geofencing-subscriptions.v0.area-entered": "enter",
    "org.camaraproject.geofencing-subscriptions.v0.area-left": "exit",
}


def camara_row(event: Any) -> dict:
    """A CAMARA Device Geofencing notification (a CloudEvent) as a fence row."""
    if not isinstance(event, dict):
        raise RecordError("a notification must be a JSON object (a CloudEvent)")
    kind = CAMARA_EVENTS.get(event.get("type"))
    if kind is None:
        raise RecordError(f"event type {event.get('type')!r} is not an area-entered or area-left notification")
    data = event.get("data")
    if not isinstance(data, dict):
        raise RecordError("data is missing")
    device = data.get("device") or {}
    device_id = (device.get("phoneNumber") or device.get("networkAccessIdentifier")
                 or (device.get("ipv4Address") or {}).get("publicAddress"))
    area = data.get("area") or {}
    if area.get("areaType") != "CIRCLE":
        raise RecordError(f"area type {area.get('areaType')!r} is not supported (CIRCLE is)")
    center = area.get("center") or {}
    return {"device_id": device_id, "device_kind": "phone", "ts": event.get("time"),
            "lon": center.get("longitude"), "lat": center.get("latitude"), "accuracy_m": area.get("radius"),
            "event": kind}


def parse_camara_events(feed: Feed, body: bytes, content_type: str) -> Rows:
    if content_type not in ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json"):
        raise IngestError(415, "send CloudEvents as application/cloudevents+json or application/json")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(400, f"body is not JSON: {exc}") from None
    out = []
    for event in data if isinstance(data, list) else [data]:
        raw = json.dumps(event, ensure_ascii=False).encode()
        try:
            out.append((camara_row(event), raw, None))
        except RecordError as exc:
            out.append((None, raw, str(exc)))
    return out
