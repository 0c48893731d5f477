"""A local stand-in for a carrier's CAMARA Device Geofencing endpoint (a mock: no carrier's
API can be reached from here). It is a real HTTP server on 127.0.0.1 that checks requests
against the spec's shapes (geofencing-subscriptions, CAMARA DeviceLocation) and sends the
spec's CloudEvents to each subscription's sink with the subscription's sink credential:

- POST /subscriptions -> 201 with the Subscription, then a subscription-started event; a
  number it does not serve -> 422 SERVICE_NOT_APPLICABLE; a circle under its minimum
  radius -> 422 GEOFENCING_SUBSCRIPTIONS.INVALID_AREA;
- DELETE /subscriptions/{id} -> 204, then a subscription-ended event (SUBSCRIPTION_DELETED);
- GET /subscriptions -> the subscriptions it holds.

A test drives the device side: ``enter(number)`` sends area-entered for that number's
subscriptions (without the device object, as the spec allows), ``end(id, reason)`` ends one
as the network would.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import re
import uuid

import aiohttp
from aiohttp import web

from tests.helpers import free_port

PREFIX = "org.camaraproject.geofencing-subscriptions.v0."
E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CarrierStandIn:
    def __init__(self, name: str, token: str, subscribers: set[str], min_radius_m: int = 1):
        self.name = name
        self.token = token
        self.subscribers = subscribers
        self.min_radius_m = min_radius_m
        self.subscriptions: dict[str, dict] = {}  # id -> the Subscription, with the number it watches
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        self.sink_answers: list[tuple[str, int, dict]] = []  # (event type, status, body) from our ingest
        self.base = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sends: set[asyncio.Task] = set()

    async def __aenter__(self) -> CarrierStandIn:
        app = web.Application()
        app.router.add_post("/geofencing-subscriptions/v0.3/subscriptions", self._create)
        app.router.add_get("/geofencing-subscriptions/v0.3/subscriptions", self._list)
        app.router.add_delete("/geofencing-subscriptions/v0.3/subscriptions/{id}", self._delete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}/geofencing-subscriptions/v0.3"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.settled()
        await self._runner.cleanup()

    async def settled(self) -> None:
        """Wait until every event sent so far has been answered by the sink."""
        while self._sends:
            await asyncio.gather(*list(self._sends))

    # ------------------------------------------------------------------ the API

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"status": status, "code": code, "message": message}, status=status)

    async def _create(self, request: web.Request) -> web.Response:
        self.requests.append(("POST", request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "UNAUTHENTICATED", "Request not authenticated")
        body = await request.json()
        problem = self._request_problem(body)
        if problem:
            return self._error(400, "INVALID_ARGUMENT", problem)
        detail = body["config"]["subscriptionDetail"]
        if detail["device"]["phoneNumber"] not in self.subscribers:
            return self._error(422, "SERVICE_NOT_APPLICABLE", "The service is not available for the provided identifier.")
        if detail["area"]["radius"] < self.min_radius_m:
            return self._error(422, "GEOFENCING_SUBSCRIPTIONS.INVALID_AREA", "The requested area is too small")
        sid = f"{self.name.lower()}-{next(self._ids):04d}-{uuid.uuid4().hex[:6]}"
        subscription = {"id": sid, "protocol": "HTTP", "sink": body["sink"], "types": body["types"],
                        "config": body["config"], "startsAt": now_iso(),
                        "expiresAt": body["config"].get("subscriptionExpireTime"), "status": "ACTIVE"}
        self.subscriptions[sid] = {**subscription, "credential": body.get("sinkCredential")}
        self._send(sid, "subscription-started", {"initiationReason": "SUBSCRIPTION_CREATED", "subscriptionId": sid})
        return web.json_response(subscription, status=201)

    @staticmethod
    def _request_problem(body) -> str | None:
        """The spec's required shape of a SubscriptionRequest, as a carrier checks it."""
        if not isinstance(body, dict) or body.get("protocol") != "HTTP":
            return "protocol must be HTTP"
        if not str(body.get("sink", "")).startswith(("http://", "https://")):
            return "sink must be a URI"
        types = body.get("types")
        if not isinstance(types, list) or len(types) != 1 or types[0] not in (PREFIX + "area-entered",
                                                                                PREFIX + "area-left"):
            return "types must hold exactly one of area-entered, area-left"
        credential = body.get("sinkCredential")
        if credential is not None and (credential.get("credentialType") != "ACCESSTOKEN"
                                       or credential.get("accessTokenType") != "bearer"
                                       or not credential.get("accessToken")
                                       or not credential.get("accessTokenExpiresUtc")):
            return "sinkCredential must be an ACCESSTOKEN of type bearer with its expiry"
        detail = (body.get("config") or {}).get("subscriptionDetail") or {}
        area = detail.get("area") or {}
        center = area.get("center") or {}
        if area.get("areaType") != "CIRCLE" or not isinstance(area.get("radius"), int) \
                or not 1 <= area["radius"] <= 200000:
            return "area must be a CIRCLE with an integer radius of 1..200000 m"
        if not (-90 <= center.get("latitude", 99) <= 90 and -180 <= center.get("longitude", 999) <= 180):
            return "center must have a latitude and a longitude"
        if not E164.match(str((detail.get("device") or {}).get("phoneNumber", ""))):
            return "device.phoneNumber must be E.164"
        return None

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        return web.json_response([{k: v for k, v in s.items() if k != "credential"}
                                  for s in self.subscriptions.values()])

    async def _delete(self, request: web.Request) -> web.Response:
        self.requests.append(("DELETE", request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "UNAUTHENTICATED", "Request not authenticated")
        sid = request.match_info["id"]
        if sid not in self.subscriptions:
            return self._error(404, "NOT_FOUND", "The specified resource is not found.")
        self.end(sid, "SUBSCRIPTION_DELETED")
        return web.Response(status=204)

    # ------------------------------------------------------------------ the device side

    def numbers_watched(self) -> set[str]:
        return {s["config"]["subscriptionDetail"]["device"]["phoneNumber"] for s in self.subscriptions.values()}

    def enter(self, number: str, with_device: bool = False) -> list[str]:
        """The device enters the areas it is watched in: area-entered for each of its
        area-entered subscriptions. Returns their ids."""
        sids = [sid for sid, s in self.subscriptions.items()
                if s["config"]["subscriptionDetail"]["device"]["phoneNumber"] == number
                and s["types"] == [PREFIX + "area-entered"]]
        for sid in sids:
            detail = self.subscriptions[sid]["config"]["subscriptionDetail"]
            data = {"subscriptionId": sid, "area": detail["area"]}
            if with_device:
                data["device"] = detail["device"]
            self._send(sid, "area-entered", data)
        return sids

    def end(self, sid: str, reason: str, description: str | None = None) -> None:
        """The subscription ends (the network's reason); the sink is told and it is gone."""
        detail = self.subscriptions[sid]["config"]["subscriptionDetail"]
        data = {"subscriptionId": sid, "area": detail["area"], "terminationReason": reason}
        if description:
            data["terminationDescription"] = description
        self._send(sid, "subscription-ended", data)
        self.subscriptions.pop(sid)

    def _send(self, sid: str, kind: str, data: dict) -> None:
        subscription = self.subscriptions[sid]
        event = {"id": uuid.uuid4().hex, "source": f"https://{self.name.lower()}.carrier.example/geofencing",
                 "type": PREFIX + kind, "specversion": "1.0", "datacontenttype": "application/json",
                 "time": now_iso(), "data": data}
        task = asyncio.get_running_loop().create_task(
            self._post(subscription["sink"], (subscription.get("credential") or {}).get("accessToken"), event))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _post(self, sink: str, token: str | None, event: dict) -> None:
        headers = {"Content-Type": "application/cloudevents+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as session:
            async with session.post(sink, data=json.dumps(event), headers=headers) as r:
                self.sink_answers.append((event["type"].removeprefix(PREFIX), r.status,
                                          await r.json(content_type=None)))
