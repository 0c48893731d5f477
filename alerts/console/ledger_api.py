"""The county's workflow in the console API: the ledger (台账) with CSV in and out, patrol
visits with photos and the problems they find tracked to close-out (销号), coverage,
public tip-offs with verification and rewards, evidence from outside (drone teams, other
sensor systems: as Frigate's ``POST /events``), and the weekly report.

Who may do what (``alerts.auth``): patrol members record visits, rectify problems, take and
verify tip-offs and post evidence; ops also edit the ledger, close problems out, propose
and pay rewards and read a reporter's contact; admins approve rewards. Evidence from a
visit's problem, a verified tip-off or an outside client goes to fusion as a signal of
source kind ``external`` (``emit``: the server sends it to ``signals``), so it joins or
opens the site's incident and is ranked with the rest.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from alerts.console.api import ConsoleApi, api_error, read_json, refusal
from alerts.evidence import EvidenceError, EvidenceStore
from alerts.reports import to_csv, to_xlsx, week_of, weekly_report
from alerts.sealing import Sealer
from alerts.store import StoreError
from detectors.timeofday import LocalClock

# The fields of a piece of evidence for fusion: site_id, source_id, kind, ts, strength,
# summary, details, evidence (references) and identity (what makes it itself: a repeat of
# the same is the same signal). Returns the signal id.
EmitEvidence = Callable[[dict[str, Any]], Awaitable[str]]
NEAREST_SITE_M = 3000.0  # evidence given by position joins a site within this distance
STRENGTH = {"patrol_finding": 0.8, "tipoff_verified": 0.75}


class LedgerApi:
    def __init__(self, console: ConsoleApi, sealer: Sealer, evidence: EvidenceStore, emit: EmitEvidence,
                 clock: LocalClock, weekly_visits: dict[str, int], county: str):
        self.console = console
        self.store = console.store
        self.sealer = sealer
        self.evidence = evidence
        self.emit = emit
        self.clock = clock
        self.weekly_visits = weekly_visits
        self.county = county

    async def call(self, fn, *args, **kwargs):
        return await self.console.call(fn, *args, **kwargs)

    # ------------------------------------------------------------------ the ledger

    async def sites(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        sites, coverage = await self.call(self.store.ledger.sites), await self.call(
            self.store.patrols.coverage, time.time(), self.weekly_visits)
        by_site = {c["site_id"]: c for c in coverage}
        # (a site added between the two reads has no coverage yet)
        unseen = {"visits_7d": 0, "required_7d": 0, "overdue": False}
        return web.json_response({"sites": [{**s, **{k: by_site.get(s["id"], unseen)[k] for k in unseen}}
                                            for s in sites]})

    async def history(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        return web.json_response({"history": await self.call(self.store.ledger.history, request.match_info["site_id"])})

    async def edit_site(self, request: web.Request) -> web.Response:
        person = await self.console.person(request, "ledger")
        body = await read_json(request)
        reason = str(body.pop("reason", "") or "")
        try:
            site = await self.call(self.store.ledger.edit, request.match_info["site_id"], body, person.name, reason)
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response(site)

    async def change_status(self, request: web.Request) -> web.Response:
        person = await self.console.person(request, "ledger")
        body = await read_json(request)
        try:
            site = await self.call(self.store.ledger.change_status, request.match_info["site_id"],
                                   str(body.get("status", "")), person.name, str(body.get("reason", "")),
                                   body.get("on") or None)
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response(site)

    async def export_csv(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        text = await self.call(self.store.ledger.export_csv)
        return web.Response(body=("\ufeff" + text).encode(), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="ledger.csv"'})

    async def import_csv(self, request: web.Request) -> web.Response:
        person = await self.console.person(request, "ledger")
        try:
            text = (await request.read()).decode("utf-8")
            result = await self.call(self.store.ledger.import_csv, text, person.name)
        except UnicodeDecodeError:
            raise api_error(400, "the CSV must be UTF-8") from None
        except StoreError as exc:
            raise refusal(exc) from None
        return web.json_response(result)

    # ------------------------------------------------------------------ patrols

    async def record_visit(self, request: web.Request) -> web.Response:
        """A visit from a phone (multipart: site_id, finding, problem, lon, lat, photo files);
        a problem found becomes evidence on the site's incident."""
        person = await self.console.person(request, "act")
        form = await request.post()
        now = time.time()
        try:
            photos = [self.evidence.save_photo("visits", now, f.file.read())
                      for f in form.getall("photos", []) if getattr(f, "file", None) is not None]
            problem = str(form.get("problem", "")).lower() in ("1", "true", "on", "yes")
            visit = await self.call(self.store.patrols.record_visit, str(form.get("site_id", "")), person.name, now,
                                    str(form.get("finding", "")), photos, _number(form.get("lon")),
                                    _number(form.get("lat")), problem)
        except (StoreError, EvidenceError, ValueError) as exc:
            raise refusal(exc) from None
        if visit["problem_id"] is not None:
            signal_id = await self.emit({
                "site_id": visit["site_id"], "source_id": f"patrol:{person.name}", "kind": "patrol_finding",
                "ts": now, "strength": STRENGTH["patrol_finding"],
                "summary": f"Patrol {person.display_name or person.name} found a problem: {visit['finding'][:200]}",
                "details": {"source": "patrol", "visit_id": visit["id"], "problem_id": visit["problem_id"],
                            "note": visit["finding"], "lon": visit["lon"], "lat": visit["lat"]},
                "evidence": photos, "identity": ("visit", visit["id"])})
            await self.call(self.store.patrols.link_problem, visit["problem_id"], signal_id)
        return web.json_response(visit, status=201)

    async def visits(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        site_id = request.query.get("site_id") or None
        return web.json_response({"visits": await self.call(self.store.patrols.visits, site_id)})

    async def coverage(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        now = time.time()
        sites = await self.call(self.store.patrols.coverage, now, self.weekly_visits)
        townships = await self.call(self.store.patrols.monthly_round, now, self.clock)
        return web.json_response({"sites": sites, "townships": townships})

    async def problems(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        state = request.query.get("state") or None
        return web.json_response({"problems": await self.call(self.store.patrols.problems, state)})

    async def advance_problem(self, request: web.Request) -> web.Response:
        step = request.match_info["step"]
        person = await self.console.person(request, "ledger" if step == "close" else "act")
        body = await read_json(request)
        try:
            problem = await self.call(self.store.patrols.advance_problem, int(request.match_info["problem_id"]), step,
                                      person.name, str(body.get("note", "")))
        except (StoreError, ValueError) as exc:
            raise refusal(exc) from None
        return web.json_response(problem)

    # ------------------------------------------------------------------ tip-offs

    async def receive_tipoff(self, request: web.Request) -> web.Response:
        """From the duty officer's form (multipart, with photos) or a hotline system (JSON,
        photos as base64)."""
        person = await self.console.person(request, "act")
        now = time.time()
        try:
            if request.content_type.startswith("multipart/"):
                form = await request.post()
                fields = {k: form.get(k) for k in ("text", "site_id", "lon", "lat", "contact")}
                photos = [self.evidence.save_photo("tipoffs", now, f.file.read())
                          for f in form.getall("photos", []) if getattr(f, "file", None) is not None]
                channel = "console"
            else:
                fields = await read_json(request)
                photos = [self.evidence.save_photo("tipoffs", now, _b64(p)) for p in fields.get("photos_b64") or []]
                channel = "hotline" if request.headers.get("Authorization", "").startswith("Bearer ") else "console"
            contact = str(fields.get("contact") or "").strip()
            tip = await self.call(self.store.tipoffs.receive, channel=channel, received_by=person.name,
                                  text=str(fields.get("text") or ""), site_id=fields.get("site_id") or None,
                                  lon=_number(fields.get("lon")), lat=_number(fields.get("lat")), photos=photos,
                                  contact_sealed=self.sealer.seal(contact) if contact else None, at=now)
        except (StoreError, EvidenceError, ValueError) as exc:
            raise refusal(exc) from None
        return web.json_response(self._shown(tip, person), status=201)

    async def tipoffs(self, request: web.Request) -> web.Response:
        person = await self.console.person(request)
        rows = await self.call(self.store.tipoffs.all, request.query.get("state") or None)
        return web.json_response({"tipoffs": [self._shown(t, person) for t in rows]})

    def _shown(self, tip: dict, person) -> dict:
        """A tip-off as this person may see it: the reporter's contact only for ops and admins."""
        sealed = tip.pop("contact_sealed", None)
        tip["has_contact"] = sealed is not None
        if sealed is not None and person.may("ledger"):
            tip["contact"] = self.sealer.open(sealed)
        return tip

    async def tipoff_step(self, request: web.Request) -> web.Response:
        step = request.match_info["step"]
        capability = {"propose": "ledger", "pay": "ledger", "approve": "users"}.get(step, "act")
        person = await self.console.person(request, capability)
        body = await read_json(request)
        try:
            tip_id = int(request.match_info["tipoff_id"])
        except ValueError:
            raise api_error(404, f"no tip-off {request.match_info['tipoff_id']}") from None
        try:
            if step in ("propose", "approve", "pay"):
                tip = await self.call(self.store.tipoffs.reward, tip_id, step, person.name,
                                      whole_yuan(body.get("yuan")))
            else:
                tip = await self.call(self.store.tipoffs.verification, tip_id, step, person.name,
                                      str(body.get("note", "")), body.get("site_id") or None)
        except (StoreError, ValueError) as exc:
            raise refusal(exc) from None
        if step == "verify":
            signal_id = await self.emit({
                "site_id": tip["site_id"], "source_id": f"tipoff:{tip['id']}", "kind": "tipoff_verified",
                "ts": tip["verified_at"], "strength": STRENGTH["tipoff_verified"],
                "summary": f"A public tip-off was verified by {person.name}: {tip['verification_note'][:200]}",
                "details": {"source": "tip-off", "tipoff_id": tip["id"], "note": tip["verification_note"]},
                "evidence": tip["photos"], "identity": ("tipoff", tip["id"])})
            await self.call(self.store.tipoffs.link_signal, tip["id"], signal_id)
            tip["signal_id"] = signal_id
        return web.json_response(self._shown(tip, person))

    # ------------------------------------------------------------------ evidence from outside

    async def external_evidence(self, request: web.Request) -> web.Response:
        """Evidence no sensor of ours produced: JSON {site_id or lon/lat, source, kind, note,
        ts (default now), strength (0..1, default 0.7), image_b64 (a JPEG or PNG)}."""
        person = await self.console.person(request, "act")
        body = await read_json(request)
        now = time.time()
        try:
            ts = float(body.get("ts") or now)
            strength = float(body.get("strength", 0.7))
            if not 0 <= strength <= 1:
                raise ValueError("strength is 0..1")
            note = str(body.get("note") or "").strip()
            if not note:
                raise ValueError("a note says what was seen")
            site_id = body.get("site_id") or None
            lon, lat = _number(body.get("lon")), _number(body.get("lat"))
            if site_id is None:
                if lon is None or lat is None:
                    raise ValueError("give a site_id, or lon and lat")
                site_id = await self.call(self.store.ledger.nearest, lon, lat, NEAREST_SITE_M)
                if site_id is None:
                    raise ValueError(f"no site within {NEAREST_SITE_M:.0f} m of ({lon}, {lat})")
            elif await self.call(self.store.ledger.get, site_id) is None:
                raise ValueError(f"no site {site_id}")
            photos = [self.evidence.save_photo("external", ts, _b64(body["image_b64"]))] if body.get("image_b64") else []
            source = str(body.get("source") or person.name)[:64]
            kind = str(body.get("kind") or "external_report")[:64]
        except (ValueError, TypeError, EvidenceError) as exc:
            raise refusal(exc) from None
        signal_id = await self.emit({
            "site_id": site_id, "source_id": source, "kind": kind, "ts": ts, "strength": strength,
            "summary": f"{source}: {note[:300]}", "details": {"source": source, "posted_by": person.name, "note": note,
                                                              "lon": lon, "lat": lat},
            "evidence": photos, "identity": (source, kind, ts, site_id)})
        return web.json_response({"signal_id": signal_id, "site_id": site_id, "evidence": photos}, status=202)

    # ------------------------------------------------------------------ the weekly report

    async def weekly(self, request: web.Request) -> web.Response:
        await self.console.person(request)
        week = request.query.get("week") or week_of(time.time() - 7 * 86400, self.clock)  # last whole week
        fmt = request.query.get("format", "xlsx")
        try:
            report = await self.call(weekly_report, self.store, week, self.clock, self.county, self.weekly_visits)
        except ValueError as exc:
            raise refusal(exc) from None
        if fmt == "csv":
            return web.Response(body=to_csv(report).encode(), content_type="text/csv", charset="utf-8",
                                headers={"Content-Disposition": f'attachment; filename="ledger-{week}.csv"'})
        body = await self.call(to_xlsx, report)
        return web.Response(body=body, headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": f'attachment; filename="ledger-{week}.xlsx"'})


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def whole_yuan(value: Any) -> int | None:
    """A reward in whole yuan: a whole number (or its text), or nothing; 99.9 and true are refused."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"yuan must be a whole number, not {value!r}")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"yuan must be a whole number, not {value!r}")
    return int(number)


def _b64(text: Any) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a photo in JSON is base64") from None


def add_ledger_routes(app: web.Application, api: LedgerApi) -> None:
    app.router.add_get("/api/ledger/sites", api.sites)
    app.router.add_get("/api/ledger/sites.csv", api.export_csv)
    app.router.add_post("/api/ledger/sites.csv", api.import_csv)
    app.router.add_post("/api/ledger/sites/{site_id}", api.edit_site)
    app.router.add_post("/api/ledger/sites/{site_id}/status", api.change_status)
    app.router.add_get("/api/ledger/sites/{site_id}/history", api.history)
    app.router.add_post("/api/visits", api.record_visit)
    app.router.add_get("/api/visits", api.visits)
    app.router.add_get("/api/coverage", api.coverage)
    app.router.add_get("/api/problems", api.problems)
    app.router.add_post("/api/problems/{problem_id}/{step}", api.advance_problem)
    app.router.add_post("/api/tipoffs", api.receive_tipoff)
    app.router.add_get("/api/tipoffs", api.tipoffs)
    app.router.add_post("/api/tipoffs/{tipoff_id}/{step}", api.tipoff_step)
    app.router.add_post("/api/evidence/external", api.external_evidence)
    app.router.add_get("/api/reports/weekly", api.weekly)
