"""The published contract of the console API (``GET /api/openapi.json``, also in
streams/schemas/console-openapi.json): every route of ``add_api_routes`` and
``add_ledger_routes`` under /api/, who may call it, what it reads and what it answers.

The row shapes are read from the store's tables (``alerts.store.schema``), so a new
column shows here by itself; the rest is written from the handlers. A route without an
operation here fails tests/alerts/console/test_openapi.py.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from alerts.auth import NEEDS, ROLES
from alerts.console.api import COOKIE, CSRF_HEADER
from alerts.console.ledger_api import NEAREST_SITE_M
from alerts.evidence import MAX_PHOTO_BYTES
from alerts.fusion import SEVERITIES, SOURCE_KINDS
from alerts.lifecycle import DISPOSITIONS
from alerts.store.incidents import OPEN_STATES, SHOWN_SIGNALS
from alerts.store.ledger import CSV_COLUMNS, EDITABLE, STATUSES
from alerts.store.patrol import PROBLEM_STEPS
from alerts.store.schema import (
    audit, fence_subscriptions, incident_signals, incidents, problems, silences, site_events, sites, tipoffs, users,
    visits,
)
from alerts.store.tipoffs import REWARD, VERIFY

VERSION = "1.1.0"  # raise when a route or a shape changes in a way a client notices
JSON = "application/json"
EPOCH = "UTC epoch seconds"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(shape: dict) -> dict:
    if isinstance(shape.get("type"), str):
        return {**shape, "type": [shape["type"], "null"]}
    return {"anyOf": [shape, {"type": "null"}]}


def obj(properties: dict, required: list[str] | tuple[str, ...] = (), description: str = "") -> dict:
    shape: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        shape["required"] = list(required)
    if description:
        shape["description"] = description
    return shape


def array(items: dict, description: str = "") -> dict:
    return {"type": "array", "items": items, **({"description": description} if description else {})}


def strings(description: str = "") -> dict:
    return {"type": "array", "items": {"type": "string"}, **({"description": description} if description else {})}


def listing(key: str, item: str) -> dict:
    """The answer of a list route: ``{key: [item, ...]}``."""
    return obj({key: array(ref(item))}, [key])


# --------------------------------------------------------------------------- rows of the store

def _column(column: sa.Column) -> dict:
    if isinstance(column.type, sa.Boolean):
        shape: dict[str, Any] = {"type": "boolean"}
    elif isinstance(column.type, sa.Integer):
        shape = {"type": "integer"}
    elif isinstance(column.type, sa.Float):
        shape = {"type": "number"}
        if column.name == "at" or column.name.endswith("_at"):
            shape["description"] = EPOCH
    elif isinstance(column.type, sa.String):
        shape = {"type": "string"}
    else:  # JSON
        shape = {}
    return shape


def row(table: sa.Table, description: str, *, drop: tuple[str, ...] = (), keep: tuple[str, ...] | None = None,
        shapes: dict[str, dict] | None = None) -> dict:
    """A row of ``table`` as the store hands it out: every column, null where the column allows it."""
    shapes = shapes or {}
    props = {}
    for column in table.c:
        if column.name in drop or (keep is not None and column.name not in keep):
            continue
        shape = {**_column(column), **shapes.get(column.name, {})}
        props[column.name] = nullable(shape) if column.nullable and not column.primary_key else shape
    return obj(props, list(props), description)


def extended(base: str, properties: dict, required: tuple[str, ...] | None = None, description: str = "") -> dict:
    """A row of ``base`` with more fields the handler adds."""
    extra = obj(properties, list(properties) if required is None else required)
    return {"allOf": [ref(base), extra], **({"description": description} if description else {})}


def schemas() -> dict[str, dict]:
    seen = obj({
        "persons": {"type": "integer", "description": "most people one camera finding showed"},
        "vehicles": {"type": "integer", "description": "most vehicles one camera finding showed"},
        "power_kw": nullable({"type": "number", "description": "most power an unexplained line drew"}),
        "meter_id": nullable({"type": "string", "description": "the meter that drew it"}),
        "devices": {"type": "integer", "description": "most devices in the fence zone at once"},
        "power_kinds": strings(), "fence_kinds": strings(),
        "field_reports": {"type": "integer", "description": "evidence from outside (patrols, tip-offs, drones)"},
    }, description="What an incident's evidence saw, at a glance (alerts.fusion.seen).")
    site_facts = {"status": {"enum": list(STATUSES)}, "sealed_on": {"format": "date"}}
    return {
        "Error": obj({"error": {"type": "string", "description": "what is wrong, in words"}}, ["error"]),
        "Session": obj({
            "user": {"type": "string"}, "display_name": {"type": "string"}, "role": {"enum": list(ROLES)},
            "csrf": {"type": "string", "description": f"send it as {CSRF_HEADER} with every change made with the "
                                                      "session cookie; empty for a machine client"},
            "may": obj({c: {"type": "boolean"} for c in ("act", "silence", "ledger", "config", "users")},
                       description="what the person's role allows (alerts.auth.NEEDS)"),
            "county": {"type": "string"}, "townships": strings(),
            "timezone_offset_h": {"type": "number", "description": "the county's offset from UTC, in hours"},
            "secure_cookies": {"type": "boolean"},
            "map_tile_url": nullable({"type": "string", "description": "an XYZ tile template for the map"}),
        }, ["user", "display_name", "role", "csrf", "may", "county", "townships", "timezone_offset_h",
            "secure_cookies", "map_tile_url"], "Who is signed in, what they may do, and what the page needs."),
        "IncidentRecord": row(incidents, "An incident as stored (the list and the detail add to it).", shapes={
            "state": {"enum": [*OPEN_STATES, "resolved"]}, "severity": {"enum": list(SEVERITIES)},
            "draft": {"type": "object", "description": "fusion's working state of the incident"},
            "disposition": {"type": "string", "description": f"one of {list(DISPOSITIONS)}, or auto_closed_quiet"},
            "silenced_by": {"description": "the id of the silence that holds it"},
            "version": {"description": "raised by every write (optimistic concurrency)"}}),
        "Seen": seen,
        "RankedIncident": extended("IncidentRecord", {
            "site_name": nullable({"type": "string"}), "township": nullable({"type": "string"}), "seen": ref("Seen"),
            "first_received_at": {"type": "number", "description": f"when its first evidence was received ({EPOCH})"},
        }, description="An incident in the ranked list: score first, then age."),
        "Evidence": row(incident_signals, "One signal that joined an incident.", shapes={
            "source_kind": {"enum": list(SOURCE_KINDS)}, "details": {"type": "object"},
            "evidence": strings("references of evidence files (GET /api/evidence?ref=...)")}),
        "AuditEntry": row(audit, "One line of an incident's audit trail.", shapes={"detail": {"type": "object"}}),
        "IncidentDetail": extended("IncidentRecord", {
            "signals": array(ref("Evidence"), f"its newest {SHOWN_SIGNALS} signals, oldest first"),
            "signals_total": {"type": "integer", "description": "how many signals joined it (all are stored)"},
            "site_name": nullable({"type": "string"}),
            "township": nullable({"type": "string"}),
            "seen": ref("Seen"),
            "audit": array(ref("AuditEntry"), "its audit trail; each run of evidence added by the system is one "
                           "entry whose detail says how many signals (`signals`) and until when (`until`)"),
            "silence": nullable(ref("Silence")),
        }, ("signals", "signals_total", "site_name", "township", "seen", "audit"),
            "An incident with its evidence, its audit trail, and (when silenced) the silence that holds it."),
        "Silence": row(silences, "A time-boxed matcher on site, source kind and source id."),
        "Site": extended("SiteFacts", {"last_visit_at": nullable({"type": "number", "description": EPOCH})},
                         description="A site of the ledger with when a patrol last visited it."),
        "SiteFacts": row(sites, "A shaft's facts in the ledger (台账).", shapes=site_facts),
        "SiteEvent": row(site_events, "What happened to a site (registered, edited, status changed, "
                         "incident confirmed), oldest first.", shapes={"detail": {"type": "object"}}),
        "User": row(users, "A console user (never the password hash).", drop=("password_hash",),
                    shapes={"role": {"enum": list(ROLES)}}),
        "FenceSubscription": row(fence_subscriptions, "A carrier's geofencing subscription for the watchlist.",
                                 keep=("carrier", "subscription_id", "device_pid", "zone_id", "event", "status",
                                       "expires_at", "ended_reason", "updated_at")),
        "Visit": row(visits, "A patrol's visit to a site.", shapes={
            "photos": strings("photo references"), "problem_id": {"description": "the problem it found, if any"}}),
        "Problem": row(problems, "A problem a visit found, tracked to close-out (销号): open -> rectified -> closed.",
                       shapes={"state": {"enum": ["open", *(to for _, to in PROBLEM_STEPS.values())]}}),
        "TipOff": {"allOf": [row(tipoffs, "", drop=("contact_sealed",), shapes={
            "state": {"enum": ["received", *(to for _, to in VERIFY.values())]},
            "reward_state": {"enum": ["none", *(to for _, to in REWARD.values())]},
            "channel": {"enum": ["console", "hotline"]}, "photos": strings("photo references")}),
            obj({"has_contact": {"type": "boolean", "description": "the reporter left a contact"},
                 "contact": nullable({"type": "string", "description": "the reporter's contact: only for ops and "
                                      "admin, and only when they left one; null when it cannot be opened"})},
                ["has_contact"])], "description": "A public tip-off (举报), as the caller may see it."},
        "Coverage": obj({
            "site_id": {"type": "string"}, "name": {"type": "string"}, "township": {"type": "string"},
            "status": {"enum": list(STATUSES)}, "visits_7d": {"type": "integer"},
            "required_7d": {"type": "integer", "description": "by the site's status"},
            "overdue": {"type": "boolean"}, "last_visit_at": nullable({"type": "number", "description": EPOCH}),
        }, ["site_id", "name", "township", "status", "visits_7d", "required_7d", "overdue", "last_visit_at"],
            "A site's patrol visits in the last 7 days against what its status requires."),
        "TownshipRound": obj({
            "township": {"type": "string"}, "month": {"type": "string", "description": "YYYY-MM, county time"},
            "sites": {"type": "integer"}, "visited": {"type": "integer"}, "not_visited": strings("site ids"),
            "complete": {"type": "boolean"},
        }, ["township", "month", "sites", "visited", "not_visited", "complete"],
            "The monthly round of a township: how many of its sites were visited this month."),
        "LiveEvent": obj({
            "type": {"enum": ["hello", "heartbeat", "resync", "incident"],
                     "description": "resync: changes were dropped for a slow page; load the list again"},
            "incident_id": {"type": "string"}, "site_id": {"type": "string"}, "state": {"type": "string"},
            "severity": {"type": "string"}, "score": {"type": "number"}, "summary": {"type": "string"},
        }, ["type"], "One line of the live feed; the incident fields come with type incident."),
    }


# --------------------------------------------------------------------------- operations

def _roles(capability: str) -> str:
    """The roles that have ``capability``, in words: "roles ops and admin"."""
    names = ROLES[ROLES.index(NEEDS[capability]):]
    return f"role {names[0]}" if len(names) == 1 else f"roles {', '.join(names[:-1])} and {names[-1]}"


def who(capability: str | None) -> str:
    """Who may call an operation, in words."""
    if capability is None:
        return "No sign-in needed."
    if capability == "view":
        return "Anyone signed in, or any machine client."
    return f"{_roles(capability).capitalize()} (capability `{capability}`), signed in or as a machine client."


def _steps_who(steps: dict[str, str]) -> str:
    """Who may take each step of a route whose capability depends on the step."""
    by_capability: dict[str, list[str]] = {}
    for step, capability in steps.items():
        by_capability.setdefault(capability, []).append(step)
    return "; ".join(f"{', '.join(names)}: {_roles(c)} (capability `{c}`)" for c, names in by_capability.items()) + "."


def error(description: str, **headers: dict) -> dict:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response


def answer(schema: dict | None, description: str, media: str = JSON) -> dict:
    return {"description": description, **({"content": {media: {"schema": schema}}} if schema is not None else {})}


def json_body(properties: dict, required: tuple[str, ...] = (), description: str = "",
              closed: bool = False) -> dict:
    schema = obj(properties, required, description)
    if closed:
        schema["additionalProperties"] = False
    return {"required": bool(required), "content": {JSON: {"schema": schema}}}


def multipart(properties: dict, description: str) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": obj(properties, (), description)}}}


PHOTOS = {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
          "description": f"photo files, each a JPEG or a PNG of at most {MAX_PHOTO_BYTES // 2**20} MiB"}
LON_LAT = {"lon": {"type": "number"}, "lat": {"type": "number"}}


def operation(method: str, path: str, summary: str, description: str, *, capability: str | None = "view",
              tag: str, ok: dict, ok_status: int = 200, params: dict[str, dict] | None = None,
              query: dict[str, dict] | None = None, body: dict | None = None,
              errors: dict[int, dict] | None = None, steps: dict[str, str] | None = None) -> dict:
    """One operation: who may call it (``capability``, or ``steps``: the capability of each
    value of the path's last parameter), its parameters, body and answers; 401 and 403 are
    added where person() may raise them."""
    op: dict[str, Any] = {"tags": [tag], "summary": summary, "operationId": f"{method} {path}"}
    op["description"] = f"{description} Who may call it: {_steps_who(steps) if steps else who(capability)}"
    if steps:
        op["x-capability"] = steps
    elif capability is not None:
        op["x-capability"] = capability
    parameters = [{"name": name, "in": "path", "required": True, "schema": schema}
                  for name, schema in (params or {}).items()]
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in (query or {}).items()]
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    responses = {str(ok_status): ok}
    if capability is None:
        op["security"] = []
    else:
        change = method != "get"
        op["security"] = [{"session": [], **({"csrf": []} if change else {})}, {"bearer": []}]
        responses["401"] = error("not signed in, the session expired, or the bearer token was not accepted")
        reasons = ["the session's change came without its CSRF token"] if change else []
        if steps or NEEDS[capability] != ROLES[0]:
            reasons.append("the caller's role may not do this")
        if reasons:
            responses["403"] = error("; ".join(reasons))
    for status, response in (errors or {}).items():
        responses[str(status)] = response
    op["responses"] = dict(sorted(responses.items()))
    return op


NOT_JSON = "the body is not a JSON object"


def incident_operations() -> list[tuple[str, str, dict]]:
    incident_id = {"incident_id": {"type": "string"}}
    return [
        ("get", "/api/incidents", operation(
            "get", "/api/incidents", "The ranked list of incidents",
            "Incidents ranked by score, then age (the older first); open ones unless filtered by state.",
            tag="incidents", ok=answer(listing("incidents", "RankedIncident"), "the ranked incidents"),
            query={"state": {"type": "string", "description": "comma-separated, of "
                             f"{[*OPEN_STATES, 'resolved']}; default {list(OPEN_STATES)}"},
                   "severity": {"type": "string", "description": f"comma-separated, of {list(SEVERITIES)}"},
                   "township": {"type": "string", "description": "comma-separated township names"}},
            errors={400: error("an unknown state or severity")})),
        ("get", "/api/incidents/{incident_id}", operation(
            "get", "/api/incidents/{incident_id}", "One incident with its evidence",
            f"The incident, its newest {SHOWN_SIGNALS} signals and how many joined it, what all of them saw, its "
            "audit trail and the silence that holds it.",
            tag="incidents", params=incident_id, ok=answer(ref("IncidentDetail"), "the incident"),
            errors={404: error("no such incident")})),
        ("post", "/api/incidents/{incident_id}/{action}", operation(
            "post", "/api/incidents/{incident_id}/{action}", "Acknowledge, dispatch or resolve an incident",
            "A step of the lifecycle (new -> acknowledged -> dispatched -> resolved; each may be skipped), "
            "audited with the caller's name and published on `alerts`. Resolving needs a disposition.",
            capability="act", tag="incidents",
            params={**incident_id, "action": {"enum": ["acknowledge", "dispatch", "resolve"]}},
            body=json_body({"disposition": {"enum": list(DISPOSITIONS), "description": "required to resolve"},
                            "note": {"type": "string", "description": "kept with a resolve; in the audit trail "
                                     "for every action"}}),
            ok=answer(ref("IncidentRecord"), "the incident as stored after the step"),
            errors={400: error("not a JSON object, an unknown action, or a resolve without a valid disposition"),
                    404: error("no such incident"),
                    409: error("the step is not allowed from the incident's state")})),
    ]


def session_operations() -> list[tuple[str, str, dict]]:
    return [
        ("post", "/api/login", operation(
            "post", "/api/login", "Sign in",
            f"A user name and password for a session cookie ({COOKIE}: HttpOnly, SameSite=Strict, with an "
            "expiry) and the session's CSRF token. Failed attempts are throttled per user name and per address.",
            capability=None, tag="session",
            body=json_body({"username": {"type": "string", "description": "case-insensitive"},
                            "password": {"type": "string"}}, ("username", "password")),
            ok={**answer(ref("Session"), "signed in"),
                "headers": {"Set-Cookie": {"schema": {"type": "string"}, "description": f"the {COOKIE} cookie"}}},
            errors={400: error(NOT_JSON), 401: error("user name or password not accepted"),
                    429: error("too many failed sign-ins", **{"Retry-After": {
                        "schema": {"type": "integer"}, "description": "seconds until the next try"}})})),
        ("post", "/api/logout", operation(
            "post", "/api/logout", "Sign out",
            "Ends the session of the cookie sent and clears the cookie.", tag="session",
            ok=answer(obj({"signed_out": {"type": "string"}}, ["signed_out"]), "signed out"))),
        ("get", "/api/session", operation(
            "get", "/api/session", "Who is signed in",
            "The caller, what their role allows, the session's CSRF token and the county's settings for the page.",
            tag="session", ok=answer(ref("Session"), "the caller's session"))),
        ("get", "/api/openapi.json", operation(
            "get", "/api/openapi.json", "This document",
            "The OpenAPI document of the console API (a description, no data).", capability=None, tag="session",
            ok=answer({"type": "object"}, "the OpenAPI 3.1 document"))),
    ]


def silence_operations() -> list[tuple[str, str, dict]]:
    return [
        ("get", "/api/silences", operation(
            "get", "/api/silences", "Silences in force", "Silences that have not ended yet, by start.",
            tag="silences", ok=answer(listing("silences", "Silence"), "the silences"))),
        ("post", "/api/silences", operation(
            "post", "/api/silences", "Add a silence",
            "A time-boxed matcher: evidence it covers is still recorded on incidents, marked, and not notified. "
            "It needs a reason and at least one of site_id, source_kind, source_id; it ends at ends_at, or "
            "duration_s after it starts. Audited.", capability="silence", tag="silences",
            body=json_body({
                "reason": {"type": "string"}, "site_id": {"type": "string"},
                "source_kind": {"type": "string", "description": f"as signals name it: {list(SOURCE_KINDS)}"},
                "source_id": {"type": "string", "description": "a camera, meter or fence zone id"},
                "starts_at": {"type": "number", "description": f"{EPOCH}; default now"},
                "ends_at": {"type": "number", "description": EPOCH},
                "duration_s": {"type": "number", "description": "used when ends_at is not given"}}, ("reason",)),
            ok_status=201, ok=answer(obj({"id": {"type": "integer"}, "created_by": {"type": "string"}},
                                         ["id", "created_by"]), "the silence was added"),
            errors={400: error("not a JSON object, no matcher or reason, a time that is not a number, or an end "
                               "not after the start")})),
        ("post", "/api/silences/{silence_id}/end", operation(
            "post", "/api/silences/{silence_id}/end", "End a silence now",
            "Ends a silence early (audited); one already over is left as it was.", capability="silence",
            tag="silences", params={"silence_id": {"type": "integer"}},
            ok=answer(ref("Silence"), "the silence as it stands"), errors={404: error("no such silence")})),
    ]


def map_and_ops_operations() -> list[tuple[str, str, dict]]:
    site_id = {"site_id": {"type": "string"}}
    short_incident = obj({"id": {"type": "string"}, "severity": {"enum": list(SEVERITIES)},
                          "state": {"enum": list(OPEN_STATES)}, "score": {"type": "number"}},
                         ["id", "severity", "state", "score"])
    fences = array(ref("FenceSubscription"))
    return [
        ("get", "/api/sites", operation(
            "get", "/api/sites", "Every shaft with its open incidents (the map)",
            "Each site of the ledger with the open incidents at it.", tag="map",
            ok=answer(obj({"sites": array(extended("Site", {"incidents": array(short_incident)}))}, ["sites"]),
                      "the sites"))),
        ("get", "/api/sites/{site_id}", operation(
            "get", "/api/sites/{site_id}", "A site's history",
            "What happened to a site, oldest first; an unknown site has an empty history.", tag="map",
            params=site_id, ok=answer(obj({"site_id": {"type": "string"}, "history": array(ref("SiteEvent"))},
                                          ["site_id", "history"]), "the history"))),
        ("get", "/api/config", operation(
            "get", "/api/config", "The config in force",
            "What ops may read of the config: thresholds, cameras, meters and fence zones (never a secret).",
            capability="config", tag="ops", ok=answer(obj({
                "config_dir": {"type": "string"}, "thresholds": {"type": "object"},
                "cameras": array(obj({"id": {"type": "string"}, "site_id": {"type": "string"},
                                      "zones": strings("zone names")})),
                "meters": array(obj({"id": {"type": "string"}, "site_id": {"type": "string"},
                                     "kind": {"type": "string"}})),
                "fence_zones": array(obj({"id": {"type": "string"}, "name": {"type": "string"},
                                          "site_ids": strings()}))}), "the config view"))),
        ("get", "/api/fence-subscriptions", operation(
            "get", "/api/fence-subscriptions", "The carriers' geofencing subscriptions",
            "Counts per carrier and status, the subscriptions that lapsed (a fence silent for someone on the "
            "watchlist until ops publish again) and those expiring before the next renewal is due.",
            capability="config", tag="ops", ok=answer(obj({
                "configured": {"type": "boolean", "description": "false when no carrier subscriptions are "
                               "configured (everything else empty)"},
                "counts": {"type": "object", "description": "carrier -> status -> count",
                           "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}},
                "lapsed": fences, "expiring": fences}, ["configured", "counts", "lapsed", "expiring"]),
                "the overview"))),
    ]


def user_operations() -> list[tuple[str, str, dict]]:
    username = {"username": {"type": "string"}}
    one_time = {"type": "string", "description": "shown once: hand it to the user"}
    return [
        ("get", "/api/users", operation(
            "get", "/api/users", "Users", "Every user, and the roles there are.", capability="users", tag="users",
            ok=answer(obj({"users": array(ref("User")), "roles": strings()}, ["users", "roles"]), "the users"))),
        ("post", "/api/users", operation(
            "post", "/api/users", "Add a user",
            "A new user with a one-time password, shown once in the answer. Audited.", capability="users",
            tag="users", body=json_body({
                "username": {"type": "string", "description": "2-64 characters: lower-case letters, digits, '.', "
                             "'_' or '-', starting with a letter"},
                "role": {"enum": list(ROLES)}, "display_name": {"type": "string"}}, ("username", "role")),
            ok_status=201, ok=answer(extended("User", {"one_time_password": one_time}), "the user was added"),
            errors={400: error("not a JSON object, a bad user name or role"), 409: error("the user exists")})),
        ("post", "/api/users/{username}/password", operation(
            "post", "/api/users/{username}/password", "Reset a user's password",
            "A new one-time password; the user's sessions end and a disabled user is enabled again. Audited.",
            capability="users", tag="users", params=username,
            ok=answer(obj({"username": {"type": "string"}, "one_time_password": one_time},
                          ["username", "one_time_password"]), "the new password"),
            errors={404: error("no such user")})),
        ("post", "/api/users/{username}/disable", operation(
            "post", "/api/users/{username}/disable", "Disable a user",
            "The user can no longer sign in; their sessions end. Audited.", capability="users", tag="users",
            params=username, ok=answer(obj({"disabled": {"type": "string"}}, ["disabled"]), "disabled"),
            errors={404: error("no such user")})),
    ]


def feed_operations() -> list[tuple[str, str, dict]]:
    return [
        ("get", "/api/live", operation(
            "get", "/api/live", "Live incident changes",
            "A stream of JSON objects, one a line, for as long as the request is kept open: hello first, an "
            "incident line for each change, a heartbeat when idle.", tag="incidents",
            ok=answer(ref("LiveEvent"), "one LiveEvent a line", "application/x-ndjson"))),
        ("get", "/api/evidence", operation(
            "get", "/api/evidence", "An evidence file",
            "A camera snapshot or an uploaded photo by its reference (as incidents, visits and tip-offs name "
            "them).", tag="evidence",
            query={"ref": {"type": "string", "description": "e.g. snapshot:snapshots/CAM-S01-A/... or photo:..."}},
            ok={"description": "the file", "content": {m: {"schema": {"type": "string",
                                                                      "contentMediaType": m}}
                                                    for m in ("image/jpeg", "image/png")}},
            errors={404: error("no such evidence file")})),
    ]


def ledger_operations() -> list[tuple[str, str, dict]]:
    site_id = {"site_id": {"type": "string"}}
    editable = {name: {"type": "number"} if name in ("lon", "lat") else {"type": "string"} for name in EDITABLE}
    editable["sealed_on"] = nullable({"type": "string", "format": "date"})
    csv_file = {"type": "string", "description": f"UTF-8 CSV with the columns {list(CSV_COLUMNS)}"}
    return [
        ("get", "/api/ledger/sites", operation(
            "get", "/api/ledger/sites", "The ledger (台账)",
            "Every site with its facts and its patrol coverage of the last 7 days.", tag="ledger",
            ok=answer(obj({"sites": array(extended("Site", {
                "visits_7d": {"type": "integer"}, "required_7d": {"type": "integer"},
                "overdue": {"type": "boolean"}}))}, ["sites"]), "the ledger"))),
        ("get", "/api/ledger/sites.csv", operation(
            "get", "/api/ledger/sites.csv", "The ledger as CSV",
            "A download (with a UTF-8 BOM, for spreadsheets) that POST takes back.", tag="ledger",
            ok=answer(csv_file, "ledger.csv", "text/csv"))),
        ("post", "/api/ledger/sites.csv", operation(
            "post", "/api/ledger/sites.csv", "Import the ledger from CSV",
            "Rows of a county's spreadsheet: new sites registered, known ones edited and their status changed "
            "where it differs. Each row on its own: a bad row is reported, the others apply.",
            capability="ledger", tag="ledger", body={"required": True, "content": {"text/csv": {"schema": csv_file}}},
            ok=answer(obj({"added": strings("site ids"), "updated": strings("site ids"), "errors": array(obj(
                {"line": {"type": "integer"}, "reason": {"type": "string"}}, ["line", "reason"]))},
                ["added", "updated", "errors"]), "what was applied"),
            errors={400: error("not UTF-8, not CSV, or a header with missing or unknown columns")})),
        ("post", "/api/ledger/sites/{site_id}", operation(
            "post", "/api/ledger/sites/{site_id}", "Edit a site's facts",
            "Change any of the editable facts (not the status: it has its own route), with a reason for the "
            "history. Audited.", capability="ledger", tag="ledger", params=site_id,
            body=json_body({**editable, "reason": {"type": "string"}}, closed=True),
            ok=answer(ref("Site"), "the site as it stands"),
            errors={400: error("not a JSON object, a field that is not editable, or a bad value"),
                    404: error("no such site")})),
        ("post", "/api/ledger/sites/{site_id}/status", operation(
            "post", "/api/ledger/sites/{site_id}/status", "Change a site's status",
            "Sealed, resealed, backfilled, breached...: with the date and the reason (required). Sealing sets "
            "sealed_on. Audited.", capability="ledger", tag="ledger", params=site_id,
            body=json_body({"status": {"enum": list(STATUSES)}, "reason": {"type": "string"},
                            "on": {"type": "string", "format": "date", "description": "default today (UTC)"}},
                           ("status", "reason")),
            ok=answer(ref("Site"), "the site as it stands"),
            errors={400: error("not a JSON object, an unknown status, a bad date, or no reason"),
                    404: error("no such site")})),
        ("get", "/api/ledger/sites/{site_id}/history", operation(
            "get", "/api/ledger/sites/{site_id}/history", "A site's history",
            "What happened to a site, oldest first; an unknown site has an empty history.", tag="ledger",
            params=site_id, ok=answer(listing("history", "SiteEvent"), "the history"))),
    ]


def patrol_operations() -> list[tuple[str, str, dict]]:
    problem_capability = {"rectify": "act", "close": "ledger"}
    return [
        ("post", "/api/visits", operation(
            "post", "/api/visits", "Record a patrol visit",
            "A visit from a phone, with photos. A problem found becomes a problem to rectify and close out, and "
            "evidence (source kind external) on the site's incident.", capability="act", tag="patrols",
            body=multipart({"site_id": {"type": "string"}, "finding": {"type": "string"},
                            "problem": {"type": "string", "description": "1, true, on or yes: the finding is a "
                                        "problem (it then needs a finding)"},
                            **LON_LAT, "photos": PHOTOS}, "the visit"),
            ok_status=201, ok=answer(ref("Visit"), "the visit was recorded"),
            errors={400: error("no such site, a problem without a finding, a position that is not a number, or a "
                               "photo that is not a JPEG or PNG")})),
        ("get", "/api/visits", operation(
            "get", "/api/visits", "Patrol visits", "Visits, newest first.", tag="patrols",
            query={"site_id": {"type": "string", "description": "only this site's"}},
            ok=answer(listing("visits", "Visit"), "the visits"))),
        ("get", "/api/coverage", operation(
            "get", "/api/coverage", "Patrol coverage",
            "Per site, visits in the last 7 days against what its status requires; per township, this month's "
            "round.", tag="patrols",
            ok=answer(obj({"sites": array(ref("Coverage")), "townships": array(ref("TownshipRound"))},
                          ["sites", "townships"]), "the coverage"))),
        ("get", "/api/problems", operation(
            "get", "/api/problems", "Problems patrols found", "Problems, newest first.", tag="patrols",
            query={"state": {"type": "string", "description": "only problems in this state: open, rectified or "
                             "closed"}},
            ok=answer(listing("problems", "Problem"), "the problems"))),
        ("post", "/api/problems/{problem_id}/{step}", operation(
            "post", "/api/problems/{problem_id}/{step}", "Rectify or close out a problem",
            "rectify (open -> rectified: what was done) or close (rectified -> closed: the close-out, 销号), each "
            "with a note. Audited.", steps=problem_capability, tag="patrols",
            params={"problem_id": {"type": "integer"}, "step": {"enum": list(PROBLEM_STEPS)}},
            body=json_body({"note": {"type": "string"}}, ("note",)),
            ok=answer(ref("Problem"), "the problem as it stands"),
            errors={400: error("not a JSON object, no note, an unknown step, or the problem is not in the state "
                               "the step needs"), 404: error("no such problem")})),
    ]


def tipoff_operations() -> list[tuple[str, str, dict]]:
    fields = {"text": {"type": "string", "description": "what the reporter said"},
              "site_id": {"type": "string"}, **LON_LAT,
              "contact": {"type": "string", "description": "the reporter's contact; stored sealed"}}
    step_capability = {**{s: "act" for s in VERIFY}, "propose": "ledger", "approve": "users", "pay": "ledger"}
    return [
        ("post", "/api/tipoffs", operation(
            "post", "/api/tipoffs", "Take a public tip-off",
            "From the duty officer's form (multipart, with photo files) or a hotline system (JSON, photos as "
            "base64). It needs the text and a site or a position. Taken with a bearer token and JSON it is "
            "recorded as channel hotline, otherwise console.", capability="act", tag="tip-offs",
            body={"required": True, "content": {
                JSON: {"schema": obj({**fields, "photos_b64": strings("JPEG or PNG photos, base64")}, ("text",))},
                "multipart/form-data": {"schema": obj({**fields, "photos": PHOTOS}, ("text",))}}},
            ok_status=201, ok=answer(ref("TipOff"), "the tip-off was taken"),
            errors={400: error("not a JSON object, no text, neither a site nor a position, no such site, or a "
                               "photo that is not a JPEG or PNG (or not base64)")})),
        ("get", "/api/tipoffs", operation(
            "get", "/api/tipoffs", "Tip-offs",
            "Tip-offs, newest first; the reporter's contact only for ops and admin.", tag="tip-offs",
            query={"state": {"type": "string", "description": "only tip-offs in this verification state"}},
            ok=answer(listing("tipoffs", "TipOff"), "the tip-offs"))),
        ("post", "/api/tipoffs/{tipoff_id}/{step}", operation(
            "post", "/api/tipoffs/{tipoff_id}/{step}", "Verify or reward a tip-off",
            "Verification: start_verifying (received -> verifying), verify or unfounded (verifying -> verified or "
            "unfounded, with a note; verify needs a site, from the tip-off or the body). A verified tip-off "
            "becomes evidence on its site's incident (signal_id). Reward: propose an amount for a verified "
            "tip-off, approve (by someone other than who proposed it), pay. Audited.", steps=step_capability,
            tag="tip-offs", params={"tipoff_id": {"type": "integer"}, "step": {"enum": list(step_capability)}},
            body=json_body({"note": {"type": "string", "description": "verify, unfounded: what the patrol found"},
                            "site_id": {"type": "string", "description": "verification steps: the site, if the "
                                        "tip-off has none yet"},
                            "yuan": {"type": "integer", "minimum": 1, "description": "propose: the reward"}}),
            ok=answer(ref("TipOff"), "the tip-off as it stands"),
            errors={400: error("not a JSON object, an unknown step, the tip-off is not in the state the step "
                               "needs, a missing note or site, an amount that is not a whole number of yuan, or "
                               "the proposer approving"), 404: error("no such tip-off")})),
    ]


def evidence_and_report_operations() -> list[tuple[str, str, dict]]:
    return [
        ("post", "/api/evidence/external", operation(
            "post", "/api/evidence/external", "Post evidence from outside",
            "Evidence no sensor of ours produced (a drone team, another sensor system), as Frigate's POST /events: "
            f"it goes to fusion as a signal of source kind external and joins or opens the site's incident. The "
            f"site is given, or the nearest within {NEAREST_SITE_M:.0f} m of lon/lat.", capability="act",
            tag="evidence", body=json_body({
                "site_id": {"type": "string"}, **LON_LAT,
                "note": {"type": "string", "description": "what was seen"},
                "source": {"type": "string", "maxLength": 64, "description": "default the caller's name"},
                "kind": {"type": "string", "maxLength": 64, "description": "default external_report"},
                "ts": {"type": "number", "description": f"{EPOCH}; default now"},
                "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7},
                "image_b64": {"type": "string", "description": "a JPEG or PNG, base64"}}, ("note",)),
            ok_status=202, ok=answer(obj({"signal_id": {"type": "string"}, "site_id": {"type": "string"},
                                          "evidence": strings("photo references")},
                                         ["signal_id", "site_id", "evidence"]), "sent to fusion"),
            errors={400: error("not a JSON object, no note, a strength outside 0..1, no site and no position, no "
                               "site near the position, no such site, or an image that is not a JPEG or PNG")})),
        ("get", "/api/reports/weekly", operation(
            "get", "/api/reports/weekly", "The weekly ledger list",
            "The week's incidents, ledger changes, visits, problems and tip-offs, as a workbook or CSV.",
            tag="reports", query={
                "week": {"type": "string", "pattern": r"^\d{4}-W\d{2}$",
                         "description": "an ISO week such as 2026-W49; default the last whole week"},
                "format": {"enum": ["xlsx", "csv"], "default": "xlsx"}},
            ok={"description": "a download (ledger-<week>.xlsx or .csv)", "content": {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}},
                "text/csv": {"schema": {"type": "string"}}}},
            errors={400: error("not an ISO week")})),
    ]


def console_openapi() -> dict:
    """The OpenAPI 3.1 document of the console API."""
    paths: dict[str, dict] = {}
    for group in (session_operations, incident_operations, silence_operations, map_and_ops_operations,
                  user_operations, feed_operations, ledger_operations, patrol_operations, tipoff_operations,
                  evidence_and_report_operations):
        for method, path, op in group():
            paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "ShaftWatch console API", "version": VERSION, "description": (
            "The alert console's API: signing in, incidents and the actions a patrol takes on them, silences, the "
            "shaft map, users, the live feed, evidence files; the ledger (台账), patrol visits and problems, "
            "tip-offs, evidence from outside and the weekly report. What a caller may do follows their role: "
            f"{', '.join(ROLES)}, each able to do what the one before it can. People sign in "
            f"(POST /api/login) for the {COOKIE} cookie, and send the session's CSRF token in {CSRF_HEADER} with "
            "every change; machine clients (runtime.api_clients in shaftwatch.yaml, each with a role) send a "
            "bearer token and need no CSRF token. Every change is audited with the caller's name.")},
        "tags": [{"name": t} for t in ("session", "incidents", "silences", "map", "ops", "users", "evidence",
                                        "ledger", "patrols", "tip-offs", "reports")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                            "description": "a person's session, from POST /api/login"},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER,
                         "description": "the session's CSRF token (csrf in the session): every change made with "
                                        "the session cookie needs it"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a machine client's token (runtime.api_clients: the token is read from "
                                          "the environment variable the client names); its role is the client's"},
            },
            "schemas": schemas(),
        },
    }
