"""The console's HTTP API: the ranked open list, an incident with its evidence, the actions
a patrol takes on it, silences and the shaft ledger; the live feed of incident changes,
evidence files, and the console page itself (alerts/console/static).

Every request names a person: a bearer token from the operators in shaftwatch.yaml (each
token read from the environment). Every action is written to the audit trail with that
name, and every state change is published to ``alerts`` like fusion's own changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from alerts.auth import bearer_holder
from alerts.console.live import HEARTBEAT_S, LiveFeed
from alerts.lifecycle import LifecycleError
from alerts.store import AlertStore, StoreError

Publish = Callable[[dict], Awaitable[None]]
EvidencePath = Callable[[str], Path | None]  # an evidence reference -> its file, if it is one
PAGE_DIR = Path(__file__).with_name("static")


class ConsoleApi:
    def __init__(self, store: AlertStore, operators: dict[str, str], publish: Publish, live: LiveFeed,
                 evidence_path: EvidencePath):
        self.store = store
        self.operators = operators  # token -> person
        self.publish = publish
        self.live = live
        self.evidence_path = evidence_path
        self.db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-store")

    async def call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.db, lambda: fn(*args, **kwargs))

    def person(self, request: web.Request) -> str:
        name = bearer_holder(request.headers.get("Authorization", ""), self.operators)
        if name is not None:
            return name
        raise web.HTTPUnauthorized(text='{"error": "an operator token is needed"}', content_type="application/json")

    # ------------------------------------------------------------------ handlers

    async def list_incidents(self, request: web.Request) -> web.Response:
        self.person(request)
        return web.json_response({"incidents": await self.call(self.store.incidents.open_ranked)})

    async def get_incident(self, request: web.Request) -> web.Response:
        self.person(request)
        incident = await self.call(self.store.incidents.get, request.match_info["incident_id"])
        if incident is None:
            return web.json_response({"error": "no such incident"}, status=404)
        return web.json_response(incident)

    async def act(self, request: web.Request) -> web.Response:
        person = self.person(request)
        body = await _json(request)
        action = request.match_info["action"]
        try:
            incident = await self.call(self.store.incidents.transition, request.match_info["incident_id"], action, person,
                                       body.get("disposition"), body.get("note"))
        except StoreError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except LifecycleError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        await self.publish(incident)
        return web.json_response(incident)

    async def list_silences(self, request: web.Request) -> web.Response:
        self.person(request)
        return web.json_response({"silences": await self.call(self.store.silences.active, time.time())})

    async def add_silence(self, request: web.Request) -> web.Response:
        person = self.person(request)
        body = await _json(request)
        starts = float(body.get("starts_at") or time.time())
        ends = float(body["ends_at"]) if body.get("ends_at") else starts + float(body.get("duration_s") or 0)
        try:
            silence_id = await self.call(self.store.silences.add, created_by=person, reason=str(body.get("reason", "")),
                                         starts_at=starts, ends_at=ends, site_id=body.get("site_id"),
                                         source_kind=body.get("source_kind"), source_id=body.get("source_id"))
        except StoreError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"id": silence_id, "created_by": person}, status=201)

    async def live_feed(self, request: web.Request) -> web.StreamResponse:
        """Incident changes as they happen, one JSON object a line, for as long as the page
        keeps the request open (a fetch() with the token: EventSource cannot send it)."""
        self.person(request)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
        await response.prepare(request)
        with self.live.subscribe() as queue:
            event: dict[str, Any] = {"type": "hello"}
            try:
                while True:
                    await response.write(json.dumps(event, ensure_ascii=False).encode() + b"\n")
                    try:
                        event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                    except asyncio.TimeoutError:
                        event = {"type": "heartbeat"}
                    if event is None:  # the server is stopping
                        break
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the page went away
        return response

    async def evidence(self, request: web.Request) -> web.StreamResponse:
        """An evidence file (a camera snapshot) by its reference, e.g. ``?ref=snapshot:...``."""
        self.person(request)
        path = self.evidence_path(request.query.get("ref", ""))
        if path is None:
            return web.json_response({"error": "no such evidence file"}, status=404)
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def site(self, request: web.Request) -> web.Response:
        self.person(request)
        return web.json_response({"site_id": request.match_info["site_id"],
                                  "history": await self.call(self.store.ledger.history, request.match_info["site_id"])})


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body is not JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


def operator_tokens(operators) -> dict[str, str]:
    return {os.environ[o.token_env]: o.name for o in operators if os.environ.get(o.token_env)}


def add_api_routes(app: web.Application, api: ConsoleApi) -> None:
    app.router.add_get("/api/incidents", api.list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", api.get_incident)
    app.router.add_post("/api/incidents/{incident_id}/{action}", api.act)
    app.router.add_get("/api/silences", api.list_silences)
    app.router.add_post("/api/silences", api.add_silence)
    app.router.add_get("/api/sites/{site_id}", api.site)
    app.router.add_get("/api/live", api.live_feed)
    app.router.add_get("/api/evidence", api.evidence)
    app.router.add_get("/", api.page)
    app.router.add_static("/console/", PAGE_DIR)
