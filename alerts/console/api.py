"""The console's HTTP API: signing in, the ranked list, an incident with its evidence, the
actions a patrol takes on it, silences, the shaft map, users; the live feed of incident
changes, evidence files, and the console page itself (alerts/console/static).

Every request names a person (``alerts.auth.Person``). People sign in with a user name and
a password (``POST /api/login``) and get a session cookie (HttpOnly, SameSite=Strict, with
an expiry); every state change they make must carry the session's CSRF token in an
``X-CSRF-Token`` header. Machine clients send a bearer token instead (configured in
shaftwatch.yaml, each with a role); they carry no cookie, so they need no CSRF token.
What a person may do follows their role (patrol, ops, admin). Every action is written to
the audit trail with the person's name, and every incident change is published to
``alerts`` like fusion's own changes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from alerts.auth import ROLES, Person, bearer_holder, tokens_in
from alerts.console.live import HEARTBEAT_S, LiveFeed
from alerts.fusion import SEVERITIES
from alerts.lifecycle import LifecycleConflict, LifecycleError
from alerts.store import AlertStore, Conflict, NotFound, StoreError
from alerts.store.accounts import one_time_password
from alerts.store.incidents import OPEN_STATES

PAGE_DIR = Path(__file__).with_name("static")
COOKIE = "shaftwatch_session"
CSRF_HEADER = "X-CSRF-Token"  # a change made with the session cookie carries the session's token in it
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
Publish = Callable[[dict], Awaitable[None]]
EvidencePath = Callable[[str], Path | None]  # an evidence reference -> its file, if it is one


@dataclass(frozen=True)
class ConsoleSettings:
    """What the page needs to know of the county, and how sessions behave."""

    county: str = ""
    townships: tuple[str, ...] = ()
    timezone_offset_h: float = 8.0
    session_ttl_s: float = 12 * 3600
    secure_cookies: bool = False  # True behind HTTPS: the cookie is then never sent in clear
    map_tile_url: str | None = None  # an XYZ tile template for the map's background; none by default
    config_view: dict[str, Any] = field(default_factory=dict)  # what ops may read of the config
    # fences.yaml camara.renew_within_h in seconds; None when no carrier subscriptions are configured
    fence_renew_within_s: float | None = None


def api_error(status: int, message: str, **headers) -> web.HTTPException:
    kind = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
            409: web.HTTPConflict, 429: web.HTTPTooManyRequests}[status]
    return kind(text=json.dumps({"error": message}), content_type="application/json", headers=headers or None)


def username_in(request: web.Request) -> str:
    """The user a path names, as accounts store it (sign-in lower-cases the name too)."""
    return request.match_info["username"].strip().lower()


def refusal(exc: Exception) -> web.HTTPException:
    """The answer to a refused request: 404 when what it names does not exist, 409 when it
    conflicts with what is there (an existing user, an incident's state), else 400."""
    if isinstance(exc, NotFound):
        return api_error(404, str(exc))
    if isinstance(exc, (Conflict, LifecycleConflict)):
        return api_error(409, str(exc))
    return api_error(400, str(exc))


class ConsoleApi:
    def __init__(self, store: AlertStore, clients: dict[str, Person], publish: Publish, live: LiveFeed,
                 evidence_path: EvidencePath, settings: ConsoleSettings):
        self.store = store
        self.clients = clients  # bearer token -> machine client
        self.publish = publish
        self.live = live
        self.evidence_path = evidence_path
        self.settings = settings
        self.db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-store")

    async def call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.db, lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ who is asking

    async def person(self, request: web.Request, capability: str = "view") -> Person:
        """The person a request comes from, allowed ``capability``; 401 or 403 otherwise."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            person = bearer_holder(header, self.clients)
            if person is None:
                raise api_error(401, "the token was not accepted")
        else:
            token = request.cookies.get(COOKIE)
            found = await self.call(self.store.accounts.session, token) if token else None
            if found is None:
                raise api_error(401, "sign in first")
            person, csrf = found
            offered = request.headers.get(CSRF_HEADER, "")
            if request.method not in SAFE_METHODS and not hmac.compare_digest(offered.encode(), csrf.encode()):
                raise api_error(403, "this change needs the session's CSRF token (reload the page)")
        if not person.may(capability):
            raise api_error(403, f"a {person.role} may not do this")
        return person

    # ------------------------------------------------------------------ signing in and out

    async def login(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        username, password = str(body.get("username", "")).strip().lower(), str(body.get("password", ""))
        remote = request.remote or ""
        wait = await self.call(self.store.accounts.retry_after, username, remote)
        if wait > 0:
            raise api_error(429, "too many failed sign-ins: wait and try again", **{"Retry-After": str(int(wait) + 1)})
        signed = await self.call(self.store.accounts.sign_in, username, password, remote, self.settings.session_ttl_s)
        if signed is None:
            raise api_error(401, "user name or password not accepted")
        person, token, csrf = signed
        response = web.json_response(self._session_body(person, csrf))
        response.set_cookie(COOKIE, token, max_age=int(self.settings.session_ttl_s), httponly=True,
                            samesite="Strict", secure=self.settings.secure_cookies, path="/")
        return response

    async def logout(self, request: web.Request) -> web.Response:
        person = await self.person(request)
        token = request.cookies.get(COOKIE)
        if token:
            await self.call(self.store.accounts.sign_out, token, person)
        response = web.json_response({"signed_out": person.name})
        response.del_cookie(COOKIE, path="/")
        return response

    async def session(self, request: web.Request) -> web.Response:
        person = await self.person(request)
        found = await self.call(self.store.accounts.session, request.cookies.get(COOKIE, ""))
        return web.json_response(self._session_body(person, found[1] if found else ""))

    def _session_body(self, person: Person, csrf: str) -> dict[str, Any]:
        settings = asdict(self.settings)
        settings.pop("config_view")
        settings.pop("session_ttl_s")
        settings.pop("fence_renew_within_s")
        return {"user": person.name, "display_name": person.display_name or person.name, "role": person.role,
                "csrf": csrf, "may": {c: person.may(c) for c in ("act", "silence", "ledger", "config", "users")},
                **settings}

    # ------------------------------------------------------------------ incidents

    async def list_incidents(self, request: web.Request) -> web.Response:
        await self.person(request)
        query = request.query
        states = _choices(query.get("state"), OPEN_STATES + ("resolved",)) or OPEN_STATES
        severities = _choices(query.get("severity"), SEVERITIES)
        townships = tuple(t for t in (query.get("township") or "").split(",") if t)
        rows = await self.call(self.store.incidents.ranked, states, severities, townships)
        return web.json_response({"incidents": rows})

    async def get_incident(self, request: web.Request) -> web.Response:
        await self.person(request)
        incident = await self.call(self.store.incidents.get, request.match_info["incident_id"])
        if incident is None:
            raise api_error(404, "no such incident")
        return web.json_response(incident)

    async def act(self, request: web.Request) -> web.Response:
        person = await self.person(request, "act")
        body = await read_json(request)
        try:
            incident = await self.call(self.store.incidents.transition, request.match_info["incident_id"],
                                       request.match_info["action"], person.name, body.get("disposition"),
                                       body.get("note"))
        except (StoreError, LifecycleError) as exc:
            raise refusal(exc) from None
        await self.publish(incident)
        return web.json_response(incident)

    # ------------------------------------------------------------------ silences

    async def list_silences(self, request: web.Request) -> web.Response:
        await self.person(request)
        return web.json_response({"silences": await self.call(self.store.silences.active, time.time())})

    async def add_silence(self, request: web.Request) -> web.Response:
        person = await self.person(request, "silence")
        body = await read_json(request)
        try:
            starts = float(body.get("starts_at") or time.time())
            ends = float(body["ends_at"]) if body.get("ends_at") else starts + float(body.get("duration_s") or 0)
            silence_id = await self.call(self.store.silences.add, created_by=person.name,
                                         reason=str(body.get("reason", "")), starts_at=starts, ends_at=ends,
                                         site_id=body.get("site_id") or None,
                                         source_kind=body.get("source_kind") or None,
                                         source_id=body.get("source_id") or None)
        except (StoreError, TypeError, ValueError) as exc:
            raise api_error(400, str(exc)) from None
        return web.json_response({"id": silence_id, "created_by": person.name}, status=201)

    async def end_silence(self, request: web.Request) -> web.Response:
        person = await self.person(request, "silence")
        try:
            silence = await self.call(self.store.silences.end, int(request.match_info["silence_id"]), person.name)
        except ValueError:
            raise api_error(404, f"no silence {request.match_info['silence_id']}") from None
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response(silence)

    # ------------------------------------------------------------------ sites and the map

    async def sites(self, request: web.Request) -> web.Response:
        """Every shaft with its ledger facts and its open incidents (for the map)."""
        await self.person(request)
        sites, open_incidents = await asyncio.gather(self.call(self.store.ledger.sites),
                                                     self.call(self.store.incidents.ranked))
        by_site: dict[str, list[dict]] = {}
        for incident in open_incidents:
            by_site.setdefault(incident["site_id"], []).append(
                {k: incident[k] for k in ("id", "severity", "state", "score")})
        return web.json_response({"sites": [{**site, "incidents": by_site.get(site["id"], [])} for site in sites]})

    async def site(self, request: web.Request) -> web.Response:
        await self.person(request)
        site_id = request.match_info["site_id"]
        return web.json_response({"site_id": site_id, "history": await self.call(self.store.ledger.history, site_id)})

    async def config_view(self, request: web.Request) -> web.Response:
        await self.person(request, "config")
        return web.json_response(self.settings.config_view)

    async def fence_subscriptions(self, request: web.Request) -> web.Response:
        """The carriers' geofencing subscriptions for the watchlist, for ops: counts, those
        that lapsed (that fence is silent for someone until ops publish again), those
        expiring before the next renewal would be due."""
        await self.person(request, "config")
        if self.settings.fence_renew_within_s is None:
            return web.json_response({"configured": False, "counts": {}, "lapsed": [], "expiring": []})
        overview = await self.call(self.store.fence_subscriptions.overview, time.time(),
                                   self.settings.fence_renew_within_s)
        keep = ("carrier", "subscription_id", "device_pid", "zone_id", "event", "status", "expires_at",
                "ended_reason", "updated_at")
        return web.json_response({"configured": True, "counts": overview["counts"],
                                  **{k: [{f: row[f] for f in keep} for row in overview[k]]
                                     for k in ("lapsed", "expiring")}})

    # ------------------------------------------------------------------ users

    async def list_users(self, request: web.Request) -> web.Response:
        await self.person(request, "users")
        return web.json_response({"users": await self.call(self.store.accounts.all), "roles": list(ROLES)})

    async def add_user(self, request: web.Request) -> web.Response:
        """A new user with a one-time password, shown once in the answer."""
        person = await self.person(request, "users")
        body = await read_json(request)
        password = one_time_password()
        try:
            user = await self.call(self.store.accounts.add, str(body.get("username", "")).strip().lower(),
                                   str(body.get("role", "")), password, person.name,
                                   str(body.get("display_name", "")).strip())
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response({**user, "one_time_password": password}, status=201)

    async def reset_password(self, request: web.Request) -> web.Response:
        person = await self.person(request, "users")
        password = one_time_password()
        try:
            await self.call(self.store.accounts.set_password, username_in(request), password, person.name)
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response({"username": username_in(request), "one_time_password": password})

    async def disable_user(self, request: web.Request) -> web.Response:
        person = await self.person(request, "users")
        try:
            await self.call(self.store.accounts.disable, username_in(request), person.name)
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response({"disabled": username_in(request)})

    # ------------------------------------------------------------------ live feed, files, page

    async def live_feed(self, request: web.Request) -> web.StreamResponse:
        """Incident changes as they happen, one JSON object a line, for as long as the page
        keeps the request open."""
        await self.person(request)
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
        await self.person(request)
        path = self.evidence_path(request.query.get("ref", ""))
        if path is None:
            raise api_error(404, "no such evidence file")
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    async def openapi(self, request: web.Request) -> web.Response:
        """This API's OpenAPI document: a description, no data, so no sign-in."""
        from alerts.console.openapi import console_openapi  # it reads this module's names

        return web.json_response(console_openapi())

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _choices(value: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated filter, each value checked."""
    chosen = tuple(v for v in (value or "").split(",") if v)
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise api_error(400, f"unknown {unknown}; one of {list(allowed)}")
    return chosen


async def read_json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise api_error(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise api_error(400, "body must be a JSON object")
    return body


def client_tokens(clients, environ) -> dict[str, Person]:
    """Machine clients from the config (name, role, the variable holding the token) whose
    token is set in ``environ``; a variable may hold two while the token is rotated."""
    return {token: Person(c.name, c.role) for c in clients for token in tokens_in(environ.get(c.token_env))}


def add_api_routes(app: web.Application, api: ConsoleApi) -> None:
    app.router.add_post("/api/login", api.login)
    app.router.add_post("/api/logout", api.logout)
    app.router.add_get("/api/session", api.session)
    app.router.add_get("/api/incidents", api.list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", api.get_incident)
    app.router.add_post("/api/incidents/{incident_id}/{action}", api.act)
    app.router.add_get("/api/silences", api.list_silences)
    app.router.add_post("/api/silences", api.add_silence)
    app.router.add_post("/api/silences/{silence_id}/end", api.end_silence)
    app.router.add_get("/api/sites", api.sites)
    app.router.add_get("/api/sites/{site_id}", api.site)
    app.router.add_get("/api/config", api.config_view)
    app.router.add_get("/api/fence-subscriptions", api.fence_subscriptions)
    app.router.add_get("/api/users", api.list_users)
    app.router.add_post("/api/users", api.add_user)
    app.router.add_post("/api/users/{username}/password", api.reset_password)
    app.router.add_post("/api/users/{username}/disable", api.disable_user)
    app.router.add_get("/api/live", api.live_feed)
    app.router.add_get("/api/evidence", api.evidence)
    app.router.add_get("/api/openapi.json", api.openapi)
    app.router.add_get("/", api.page)
    app.router.add_static("/console/", PAGE_DIR)
