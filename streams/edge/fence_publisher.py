"""The carriers' side of the fence: the county's zones as CAMARA Device Geofencing
subscriptions for the watchlist's key persons (``shaftwatch fences publish``).

A CAMARA geofencing subscription watches one device entering (or leaving) one circle, and
has one event type and an expiry. So for every carrier with an endpoint in fences.yaml,
every number given and every circle covering a zone, publishing keeps two subscriptions
(area-entered, area-left) whose sink is our ingest endpoint. It reconciles what the
carrier holds with what is wanted now:

- a wanted subscription that exists and does not expire within ``renew_within_h`` is kept;
- one that is missing, expires soon or was ended by the carrier is created (again); the one
  it replaces is deleted at the carrier afterwards, so the fence never goes silent;
- a subscription no longer wanted (the number was left out, the zone changed) is deleted.

The clear numbers come on standard input at publish time and go only to the carriers: the
store keeps subscription id -> pseudonym and zone (alerts.store.fence_subscriptions), which
is all that ingest needs to read an event that has no device object. A number that a
carrier does not serve (CAMARA's 422 SERVICE_NOT_APPLICABLE, UNSUPPORTED_IDENTIFIER or
404 IDENTIFIER_NOT_FOUND: it belongs to another carrier) is skipped there.

``zones_geojson`` is the other half of the county plan: the zones with the warning SMS
(短信提醒) each carrier sends to phones entering them, for the carriers' own fence systems.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import re
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from detectors.geometry import bounding_box, metres_between, point_in_polygon
from streams.config.fences import CamaraEndpoint, CamaraSettings, FencesFile, FenceZone
from streams.edge.pseudonyms import pseudonymize

# CAMARA's event types, one per subscription, and what each is as a fence row event.
EVENT_TYPES = {
    "enter": "org.camaraproject.geofencing-subscriptions.v0.area-entered",
    "exit": "org.camaraproject.geofencing-subscriptions.v0.area-left",
}
# Refusals that mean "this number is not ours" (another carrier's subscriber).
NOT_SERVED = {(422, "SERVICE_NOT_APPLICABLE"), (422, "UNSUPPORTED_IDENTIFIER"), (404, "IDENTIFIER_NOT_FOUND")}
E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")
CHINA_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")  # an 11-digit mainland mobile number without +86
PARALLEL_REQUESTS = 8


@dataclass(frozen=True)
class Circle:
    """A CAMARA area: a circle of ``radius_m`` around (lat, lon); ``key`` names it within its zone."""

    zone_id: str
    key: str
    lat: float
    lon: float
    radius_m: int

    def area(self) -> dict:
        return {"areaType": "CIRCLE", "center": {"latitude": self.lat, "longitude": self.lon},
                "radius": self.radius_m}

    def as_row(self) -> dict:
        return {"key": self.key, "lat": self.lat, "lon": self.lon, "radius_m": self.radius_m}


def covering_circles(zone: FenceZone, settings: CamaraSettings) -> list[Circle]:
    """Circles that together cover a polygon zone, each no larger than ``max_radius_m``:
    the zone's bounding box cut into n x n cells (the smallest n that fits), keeping the
    cells that touch the polygon, each covered by the circle through its corners.
    A zone of cell ids has no shape to cover: none."""
    if zone.polygon is None:
        return []
    polygon = zone.zone().polygon
    west, south, east, north = bounding_box(polygon)
    n = 1
    while metres_between((west, south), (west + (east - west) / n, south + (north - south) / n)) / 2 \
            > settings.max_radius_m:
        n += 1
    circles = []
    for i in range(n):
        for j in range(n):
            x0, x1 = west + (east - west) * i / n, west + (east - west) * (i + 1) / n
            y0, y1 = south + (north - south) * j / n, south + (north - south) * (j + 1) / n
            cell = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            touches = (any(point_in_polygon(x, y, polygon) for x, y in cell)
                       or any(x0 <= x <= x1 and y0 <= y <= y1 for x, y in polygon)
                       or point_in_polygon((x0 + x1) / 2, (y0 + y1) / 2, polygon))
            if not touches:
                continue
            lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
            radius = math.ceil(metres_between((lon, lat), (x1, y1)))
            circles.append(Circle(zone.id, f"{i}.{j}" if n > 1 else "0", round(lat, 6), round(lon, 6),
                                  max(radius, settings.min_radius_m)))
    return circles


def zones_geojson(fences: FencesFile) -> dict:
    """The zones as GeoJSON for the carriers' fence and SMS systems: each zone's polygon
    (or its cell ids), the sites it protects, its hours and its warning SMS."""
    features = []
    for z in fences.zones:
        geometry = None
        if z.polygon is not None:
            ring = [list(p) for p in z.zone().polygon]
            geometry = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
        features.append({"type": "Feature", "id": z.id, "geometry": geometry, "properties": {
            "name": z.name, "site_ids": z.site_ids, "cells": z.cells, "active_hours": list(z.active_hours),
            "warning_sms": z.warning_sms}})
    return {"type": "FeatureCollection", "features": features}


def e164(line: str) -> str | None:
    """A number as CAMARA wants it (E.164 with +), or None if it is not one: an 11-digit
    mainland mobile gets +86; spaces and dashes are dropped."""
    number = line.strip().replace(" ", "").replace("-", "")
    if CHINA_MOBILE.match(number):
        number = "+86" + number
    return number if E164.match(number) else None


class CarrierRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class CamaraClient:
    """A carrier's geofencing-subscriptions API: create and delete (CAMARA has no update)."""

    def __init__(self, endpoint: CamaraEndpoint, token: str, session: aiohttp.ClientSession):
        self.root = endpoint.api_root.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = session

    async def create(self, body: dict) -> dict:
        async with self.session.post(f"{self.root}/subscriptions", json=body,
                                     headers={**self.headers, "x-correlator": str(uuid.uuid4())}) as r:
            answer = await r.json(content_type=None) if r.content_length != 0 else {}
            if r.status in (201, 202) and isinstance(answer, dict) and answer.get("id"):
                return {**answer, "status": answer.get("status") or ("ACTIVE" if r.status == 201 else
                                                                     "ACTIVATION_REQUESTED")}
            raise self._refused(r.status, answer)

    async def delete(self, subscription_id: str) -> None:
        """Delete; one the carrier no longer knows (404) is as good as deleted."""
        async with self.session.delete(f"{self.root}/subscriptions/{subscription_id}",
                                       headers={**self.headers, "x-correlator": str(uuid.uuid4())}) as r:
            if r.status not in (202, 204, 404):
                raise self._refused(r.status, await r.json(content_type=None) if r.content_length != 0 else {})

    @staticmethod
    def _refused(status: int, answer) -> CarrierRefused:
        answer = answer if isinstance(answer, dict) else {}
        return CarrierRefused(status, str(answer.get("code", "")), str(answer.get("message", "")))


@dataclass
class CarrierReport:
    """What publishing did at one carrier."""

    carrier: str
    created: int = 0
    renewed: int = 0
    kept: int = 0
    deleted: int = 0
    numbers_not_served: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (f"{self.carrier}: {self.created} created, {self.renewed} renewed, {self.kept} kept, "
                f"{self.deleted} deleted, {self.numbers_not_served} numbers not served by this carrier")
        return text + "".join(f"\n  failed: {f}" for f in self.failures)


@dataclass
class PublishReport:
    carriers: list[CarrierReport]
    refused_lines: list[str]  # "line N: why" (never the number itself)
    zones_without_circles: list[str]

    @property
    def ok(self) -> bool:
        return not self.refused_lines and not any(c.failures for c in self.carriers)

    def text(self) -> str:
        lines = [c.line() for c in self.carriers]
        lines += [f"refused {r}" for r in self.refused_lines]
        lines += [f"zone {z} has only cell ids: no CAMARA circle (the carriers fence it by its cells)"
                  for z in self.zones_without_circles]
        return "\n".join(lines)


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def parse_iso(text) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class FencePublisher:
    """Reconciles the carriers' subscriptions with the numbers given now (see the module)."""

    def __init__(self, fences: FencesFile, subscriptions, key: bytes, api_tokens: dict[str, str],
                 sink_tokens: dict[str, str], now=time.time):
        """``subscriptions``: alerts.store.fence_subscriptions.FenceSubscriptions (blocking
        calls, run here in a thread); ``api_tokens``: carrier -> our token at its API;
        ``sink_tokens``: carrier -> the token it sends events to our sink with."""
        if fences.camara is None:
            raise ValueError("fences.yaml has no camara section: nothing to publish to")
        self.fences = fences
        self.settings = fences.camara
        self.subscriptions = subscriptions
        self.key = key
        self.api_tokens = api_tokens
        self.sink_tokens = sink_tokens
        self.now = now

    def read_numbers(self, lines: list[str]) -> tuple[list[str], list[str]]:
        """-> the numbers (E.164) and the refused lines ("line N: why"). With a watchlist
        file, only numbers on it are watched: these subscriptions follow key persons."""
        watchlist = self.fences.read_watchlist()
        numbers, refused = [], []
        for n, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            number = e164(line)
            if number is None:
                refused.append(f"line {n}: not a phone number in E.164 (+86...) or an 11-digit mobile number")
            elif watchlist and pseudonymize(self.key, number) not in watchlist:
                refused.append(f"line {n}: not on the watchlist (fences.yaml watchlist_file)")
            elif number not in numbers:
                numbers.append(number)
        return numbers, refused

    async def publish(self, lines: list[str]) -> PublishReport:
        numbers, refused = self.read_numbers(lines)
        circles = [c for z in self.fences.zones for c in covering_circles(z, self.settings)]
        without = [z.id for z in self.fences.zones if z.polygon is None]
        reports = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for endpoint in self.settings.endpoints:
                report = CarrierReport(endpoint.carrier)
                reports.append(report)
                token = self.api_tokens.get(endpoint.carrier)
                if not token or not self.sink_tokens.get(endpoint.carrier):
                    report.failures.append(f"no token: our token at the carrier comes from ${endpoint.token_env}, "
                                           f"its token at our sink from its ingest source's token_env")
                    continue
                await self._reconcile(CamaraClient(endpoint, token, session), endpoint.carrier, numbers, circles,
                                      report)
        return PublishReport(reports, refused, without)

    async def _reconcile(self, client: CamaraClient, carrier: str, numbers: list[str], circles: list[Circle],
                         report: CarrierReport) -> None:
        now = self.now()
        current = await asyncio.to_thread(self.subscriptions.current, carrier)
        by_key: dict[tuple, list[dict]] = {}
        for row in current:
            by_key.setdefault((row["device_pid"], row["zone_id"], row["circle"]["key"], row["event"]), []).append(row)
        wanted: set[tuple] = set()
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)

        async def one_number(number: str) -> None:
            pid = pseudonymize(self.key, number)
            for circle in circles:
                for event in EVENT_TYPES:
                    key = (pid, circle.zone_id, circle.key, event)
                    wanted.add(key)
                    rows = by_key.get(key, [])
                    fresh = [r for r in rows if r["status"] != "ended"
                             and (r["expires_at"] is None or r["expires_at"] > now + self.settings.renew_within_h * 3600)
                             and r["circle"] == circle.as_row()]
                    if fresh:
                        report.kept += 1
                        continue
                    try:
                        async with gate:
                            await self._create(client, carrier, number, pid, circle, event, now)
                    except CarrierRefused as exc:
                        if (exc.status, exc.code) in NOT_SERVED:
                            report.numbers_not_served += 1
                            return  # another carrier's subscriber: nothing more to ask here
                        report.failures.append(f"{circle.zone_id} circle {circle.key} {event}: {exc}")
                        continue
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        report.failures.append(f"{circle.zone_id} circle {circle.key} {event}: {exc!r}")
                        continue
                    if rows:
                        report.renewed += 1
                        for old in rows:  # the new one watches now: the old one goes
                            await self._end(client, carrier, old, "replaced", report)
                    else:
                        report.created += 1

        await asyncio.gather(*(one_number(n) for n in numbers))
        for key, rows in by_key.items():
            if key not in wanted:
                for old in rows:
                    await self._end(client, carrier, old, "deleted", report)
                    report.deleted += 1

    async def _create(self, client: CamaraClient, carrier: str, number: str, pid: str, circle: Circle, event: str,
                      now: float) -> None:
        expires = now + self.settings.subscription_days * 86400
        answer = await client.create({
            "protocol": "HTTP",
            "sink": self.settings.sink,
            "sinkCredential": {"credentialType": "ACCESSTOKEN", "accessToken": self.sink_tokens[carrier],
                               "accessTokenExpiresUtc": iso(expires + 86400), "accessTokenType": "bearer"},
            "types": [EVENT_TYPES[event]],
            "config": {"subscriptionDetail": {"device": {"phoneNumber": number}, "area": circle.area()},
                       "subscriptionExpireTime": iso(expires), "initialEvent": True},
        })
        status = {"ACTIVE": "active", "INACTIVE": "inactive"}.get(answer["status"], "requested")
        await asyncio.to_thread(self.subscriptions.record, carrier=carrier, subscription_id=str(answer["id"]),
                                device_pid=pid, zone_id=circle.zone_id, circle=circle.as_row(), event=event,
                                expires_at=parse_iso(answer.get("expiresAt")) or expires, status=status, now=now)

    async def _end(self, client: CamaraClient, carrier: str, row: dict, status: str, report: CarrierReport) -> None:
        """Delete at the carrier (an ended one is already gone there), then mark it ours."""
        if row["status"] != "ended":
            try:
                await client.delete(row["subscription_id"])
            except (CarrierRefused, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                report.failures.append(f"delete {row['subscription_id']}: {exc!r}")
                return
        await asyncio.to_thread(self.subscriptions.set_status, carrier, row["subscription_id"], status)
