"""Incidents in the store: fusion of signals into incidents (a micro-batch to a
transaction), the lifecycle a patrol works through, what the system does by itself
(quiet-close, escalation), and reading them back.

Writes are idempotent: a signal already stored (by its signal_id) changes nothing, so
replaying ``signals`` after a crash duplicates nothing. Several processes write incidents
(the fusion agent of each worker, the leader's housekeeping, the console's server). Each
incident row carries a ``version``: a write applies only to the version it read, and a
write that lost the race is redone on what the winner stored, so no evidence, lifecycle
step or close is silently overwritten.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import sqlalchemy as sa

from alerts.fusion import (
    AUTO_CLOSED, FusionRules, IncidentDraft, SiteContext, closes_quietly, escalation_due_at, fuse, rank_key, seen,
    signals_counted,
)
from alerts.lifecycle import check_transition
from alerts.store.schema import (
    SYSTEM, NotFound, audit, incident_signals, incidents, silences, site_events, sites, write_audit,
)
from detectors.timeofday import LocalClock

OPEN_STATES = ("new", "acknowledged", "dispatched")
RulesAt = Callable[[float], FusionRules]  # the fusion rules in force at a source time (day or night)
ATTEMPTS = 5  # a write that lost a race with another process is redone this often
# An incident page shows its newest signals; what they saw (``seen``) and the count cover
# all of them. A site fed for weeks gathers tens of thousands, more than a page can carry.
SHOWN_SIGNALS = 200


class IncidentChanged(Exception):
    """Another process wrote the incident after this one read it: read again and redo."""


def _retried(fn):
    """Run ``fn`` (one transaction) again when it lost a race on an incident row."""
    for attempt in range(ATTEMPTS):
        try:
            return fn()
        except (IncidentChanged, sa.exc.IntegrityError):
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def published(row: dict) -> dict[str, Any]:
    """An incident row as it is published on ``alerts``: the fields of the contract's
    Incident record (streams.contract), so that the contract needs no row layout."""
    return dict(
        incident_id=row["id"], site_id=row["site_id"], state=row["state"], severity=row["severity"],
        score=row["score"], opened_at=row["opened_at"], updated_at=row["updated_at"], summary=row["summary"],
        signal_ids=list(row["draft"].get("signal_ids", [])),
        signal_count=signals_counted(row["draft"].get("signal_count", 0), row["draft"].get("signal_ids", [])),
        disposition=row.get("disposition"),
        silenced_by=str(row["silenced_by"]) if row.get("silenced_by") is not None else None,
        previous_incident_id=row.get("previous_incident_id"),
    )


def _seen_by_reading(c, incident_ids: list[str]) -> dict[str, dict]:
    """``seen`` of incidents stored before fusion kept it in the incident, from their signals."""
    evidence: dict[str, list[dict]] = {i: [] for i in incident_ids}
    if incident_ids:
        for s in c.execute(sa.select(incident_signals.c.incident_id, incident_signals.c.source_kind,
                                     incident_signals.c.source_id, incident_signals.c.kind, incident_signals.c.details)
                           .where(incident_signals.c.incident_id.in_(incident_ids))):
            evidence[s.incident_id].append(dict(s._mapping))
    return {i: seen(signals) for i, signals in evidence.items()}


def _audit_trail(c, incident_id: str) -> list[dict]:
    """An incident's audit trail with each run of evidence added by the system between two
    other entries as one entry (the run's first, its detail saying how many signals and
    until when); every other entry whole. The store keeps each line; a page needs the
    people's actions, not the 40,000 lines of an incident a site fed for a month, so the
    runs are counted by the database."""
    mine = audit.c.incident_id == incident_id
    added = (audit.c.action == "evidence_added") & (audit.c.actor == SYSTEM)
    entries = [dict(r._mapping) for r in c.execute(sa.select(audit).where(mine, ~added).order_by(audit.c.id))]
    bounds = [0] + [e["id"] for e in entries] + [None]
    for after, before in zip(bounds, bounds[1:]):
        between = [mine, added, audit.c.id > after] + ([audit.c.id < before] if before is not None else [])
        n, first, at, until = c.execute(sa.select(sa.func.count(), sa.func.min(audit.c.id), sa.func.min(audit.c.at),
                                                  sa.func.max(audit.c.at)).where(*between)).one()
        if n:
            entries.append({"id": first, "incident_id": incident_id, "at": at, "actor": SYSTEM,
                            "action": "evidence_added", "detail": {"signals": n, "until": until}})
    return sorted(entries, key=lambda e: e["id"])


def draft_of(row: dict) -> IncidentDraft:
    """An incident row as fusion's draft: a private copy, lifecycle columns authoritative."""
    stored = row["draft"]
    kept = stored.get("seen")  # None: stored before fusion kept it (its signals are read again)
    return IncidentDraft(**{**stored, "state": row["state"], "disposition": row["disposition"],
                            "received_at": row["received_at"], "strongest": dict(stored["strongest"]),
                            "severity_at": dict(stored.get("severity_at") or {}),
                            "signal_ids": list(stored["signal_ids"]), "kinds": list(stored["kinds"]),
                            "seen": None if kept is None else
                            {k: list(v) if isinstance(v, list) else v for k, v in kept.items()}})


def _update_incident(c, row: dict, **values) -> dict:
    """Write ``values`` to an incident row read at ``row["version"]``; IncidentChanged if
    another process wrote it since. Returns the row as stored."""
    values["version"] = row["version"] + 1
    done = c.execute(incidents.update().where(incidents.c.id == row["id"], incidents.c.version == row["version"])
                     .values(**values))
    if done.rowcount != 1:
        raise IncidentChanged(row["id"])
    return {**row, **values}


class Incidents:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def apply_signal(self, signal: dict[str, Any], rules: FusionRules, clock: LocalClock) -> tuple[dict | None, str]:
        """Fuse one signal into its site's incident and store both, in one transaction.
        Returns (incident, change) with change one of opened, updated, duplicate."""
        return self.apply_signals([signal], rules, clock)[0]

    def apply_signals(self, signals: list[dict[str, Any]], rules: FusionRules,
                      clock: LocalClock) -> list[tuple[dict | None, str]]:
        """Fuse signals in their order, all in one transaction: a burst of evidence costs
        one commit, not one each. Each sees the ones before it (same site, same dedup).

        What fusion needs from the database is read once for the whole batch (which
        signals are known, each site's latest incident and ledger context, the silences
        covering the batch's times); the incidents are then followed in memory and each
        touched one is written once, its evidence and audit rows in one statement each.
        Returns (incident as it stood after the signal, change) per signal."""
        def attempt():
            with self.engine.begin() as c:
                batch = _FusionBatch.read(c, signals)
                results = [batch.apply(signal, rules, clock) for signal in signals]
                batch.write(c)
            return results
        return _retried(attempt)

    # ------------------------------------------------------------------ lifecycle

    def transition(self, incident_id: str, action: str, actor: str, disposition: str | None = None,
                   note: str | None = None) -> dict:
        """acknowledge, dispatch or resolve, by a named person; audited."""
        def attempt():
            with self.engine.begin() as c:
                row = c.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
                if row is None:
                    raise NotFound(f"no incident {incident_id}")
                row = dict(row._mapping)
                new_state = check_transition(row["state"], action, disposition)
                values: dict[str, Any] = {"state": new_state, "written_at": time.time()}
                if action == "resolve":
                    values.update(disposition=disposition, note=note)
                values["draft"] = dict(row["draft"], state=new_state, disposition=values.get("disposition"))
                stored = _update_incident(c, row, **values)
                write_audit(c, incident_id, actor, action, {"from": row["state"], "to": new_state,
                                                             "disposition": disposition, "note": note})
                if action == "resolve" and disposition == "illegal_mining_confirmed":
                    c.execute(site_events.insert().values(site_id=row["site_id"], at=time.time(),
                                                          kind="incident_confirmed",
                                                          note=f"{incident_id}: {note or ''}", actor=actor))
                return stored
        return _retried(attempt)

    def close_quiet(self, now: float, rules_at: RulesAt) -> list[dict]:
        """Close untouched incidents that received no evidence for quiet_close_s (wall time
        ``now`` against each incident's stored ``received_at``), unless they ever went above
        quiet_close_max_severity. ``rules_at(ts)``: the rules in force at the incident's
        newest evidence. Such an incident reopens if evidence within its window follows."""
        def attempt():
            closed = []
            with self.engine.begin() as c:
                for row in c.execute(sa.select(incidents).where(incidents.c.state == "new")).all():
                    row = dict(row._mapping)
                    rules = rules_at(row["updated_at"])
                    if not closes_quietly(draft_of(row), rules, now):
                        continue
                    note = f"no new evidence for {rules.quiet_close_s / 60:.0f} min and nobody working it"
                    closed.append(_update_incident(
                        c, row, state="resolved", disposition=AUTO_CLOSED, note=note, written_at=time.time(),
                        draft=dict(row["draft"], state="resolved", disposition=AUTO_CLOSED)))
                    write_audit(c, row["id"], SYSTEM, "resolve", {"from": "new", "to": "resolved",
                                                                   "disposition": AUTO_CLOSED, "note": note})
            return closed
        return _retried(attempt)

    def due_escalations(self, now: float, rules_at: RulesAt) -> list[dict]:
        """Incidents still new escalate_after_s (wall time) after they first reached
        escalate_min_severity, not silenced: escalate once, audited."""
        def attempt():
            out = []
            with self.engine.begin() as c:
                for row in c.execute(sa.select(incidents).where(
                        incidents.c.state == "new", incidents.c.escalated_at.is_(None),
                        incidents.c.silenced_by.is_(None))).all():
                    row = dict(row._mapping)
                    rules = rules_at(row["updated_at"])
                    due = escalation_due_at(draft_of(row), rules)
                    if due is None or due > now:
                        continue
                    out.append(_update_incident(c, row, escalated_at=now))
                    write_audit(c, row["id"], SYSTEM, "escalated", {
                        "unacknowledged_for_s": round(now - due + rules.escalate_after_s), "severity": row["severity"]})
            return out
        return _retried(attempt)

    def get(self, incident_id: str) -> dict | None:
        """One incident with its newest ``SHOWN_SIGNALS`` signals (``signals_total``: all of
        them), what all its evidence saw, its audit trail (each run of evidence added by the
        system as one entry) and the silence that holds it, if any."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                return None
            out = dict(row._mapping)
            mine = incident_signals.c.incident_id == incident_id
            out["signals"] = [dict(r._mapping) for r in c.execute(
                sa.select(incident_signals).where(mine)
                .order_by(incident_signals.c.ts.desc(), incident_signals.c.signal_id.desc()).limit(SHOWN_SIGNALS))][::-1]
            out["signals_total"] = c.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
            site = c.execute(sa.select(sites.c.name, sites.c.township).where(sites.c.id == row.site_id)).first()
            out["site_name"], out["township"] = (site.name, site.township) if site else (None, None)
            out["seen"] = row.draft.get("seen") or _seen_by_reading(c, [incident_id])[incident_id]
            out["audit"] = _audit_trail(c, incident_id)
            if row.silenced_by is not None:
                s = c.execute(sa.select(silences).where(silences.c.id == row.silenced_by)).first()
                out["silence"] = dict(s._mapping) if s else None
            return out

    def ranked(self, states: tuple[str, ...] = OPEN_STATES, severities: tuple[str, ...] = (),
               townships: tuple[str, ...] = ()) -> list[dict]:
        """Incidents in ``states`` (open ones by default), optionally of some severities or
        townships, ranked: score first, then age. Each row also says its site's name and
        township, when its first evidence was received, and what its evidence saw (``seen``)."""
        query = (sa.select(incidents, sites.c.name.label("site_name"), sites.c.township)
                 .select_from(incidents.outerjoin(sites, sites.c.id == incidents.c.site_id))
                 .where(incidents.c.state.in_(states)))
        if severities:
            query = query.where(incidents.c.severity.in_(severities))
        if townships:
            query = query.where(sites.c.township.in_(townships))
        with self.engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(query)]
            read = _seen_by_reading(c, [row["id"] for row in rows if row["draft"].get("seen") is None])
        for row in rows:
            row["seen"] = row["draft"].get("seen") or read[row["id"]]
            row["first_received_at"] = min((row["draft"].get("severity_at") or {}).values(),
                                           default=row["received_at"])
        return sorted(rows, key=rank_key)


class _FusionBatch:
    """One transaction of fusion: the rows it read, the incidents it changed, the rows it adds."""

    def __init__(self, known: set[str], latest: dict[str, dict], contexts: dict[str, SiteContext],
                 silences: list[dict]):
        self.known = known  # signal ids already stored (or earlier in this batch)
        self.latest = latest  # site id -> its latest incident (by opening time), as a row
        self.contexts = contexts
        self.silences = silences  # those covering some signal time of the batch
        self.opened: dict[str, dict] = {}  # incident id -> row, for incidents new in this batch
        self.updated: dict[str, dict] = {}  # incident id -> row, for stored incidents changed
        self.read_versions: dict[str, int] = {}  # incident id -> the version this batch read
        self.evidence: list[dict] = []
        self.trail: list[dict] = []

    @classmethod
    def read(cls, c, signals: list[dict[str, Any]]) -> _FusionBatch:
        ids = [s["signal_id"] for s in signals]
        known = set(c.execute(sa.select(incident_signals.c.signal_id)
                              .where(incident_signals.c.signal_id.in_(ids))).scalars())
        site_ids = sorted({s["site_id"] for s in signals})
        latest = {}
        for site_id in site_ids:
            row = c.execute(sa.select(incidents).where(incidents.c.site_id == site_id)
                            .order_by(incidents.c.opened_at.desc()).limit(1)).first()
            if row is not None:
                latest[site_id] = dict(row._mapping)
        status = dict(c.execute(sa.select(sites.c.id, sites.c.status).where(sites.c.id.in_(site_ids))).all())
        confirmed = dict(c.execute(sa.select(incidents.c.site_id, sa.func.count()).where(
            incidents.c.site_id.in_(site_ids), incidents.c.disposition == "illegal_mining_confirmed")
            .group_by(incidents.c.site_id)).all())
        contexts = {site_id: SiteContext(status=status.get(site_id, "sealed"),
                                         confirmed_incidents=confirmed.get(site_id, 0)) for site_id in site_ids}
        times = [s["ts"] for s in signals]
        silences_rows = [dict(r._mapping) for r in c.execute(sa.select(silences).where(
            silences.c.starts_at <= max(times), silences.c.ends_at > min(times)).order_by(silences.c.id))]
        return cls(known, latest, contexts, silences_rows)

    def matching_silence(self, signal: dict) -> int | None:
        ts = signal["ts"]
        for s in self.silences:
            if (s["starts_at"] <= ts < s["ends_at"] and s["site_id"] in (None, signal["site_id"])
                    and s["source_kind"] in (None, signal["source_kind"])
                    and s["source_id"] in (None, signal["source_id"])):
                return s["id"]
        return None

    def apply(self, signal: dict[str, Any], rules: FusionRules, clock: LocalClock) -> tuple[dict | None, str]:
        if signal["signal_id"] in self.known:
            return None, "duplicate"
        site_id = signal["site_id"]
        latest = self.latest.get(site_id)
        # A private copy: the row handed out for an earlier signal stays as it was.
        draft = draft_of(latest) if latest is not None else None
        now = time.time()
        draft, change = fuse(draft, signal, rules, self.contexts[site_id], clock, received_at=now)
        if change == "duplicate":
            return None, change
        silence = self.matching_silence(signal)
        values = dict(site_id=draft.site_id, state=draft.state, severity=draft.severity, score=draft.score,
                      opened_at=draft.opened_at, updated_at=draft.updated_at, summary=draft.summary,
                      draft=draft.as_dict(), previous_incident_id=draft.previous_incident_id, written_at=now,
                      received_at=draft.received_at, disposition=draft.disposition)
        if change == "opened":
            row = {**_NEW_INCIDENT, "id": draft.incident_id, "silenced_by": silence, "version": 0, **values}
            self.opened[row["id"]] = row
            self.trail.append(dict(incident_id=row["id"], at=now, actor=SYSTEM, action="opened", detail={
                "signal_id": signal["signal_id"], "previous": draft.previous_incident_id, "silenced_by": silence}))
        else:
            row = {**latest, **values}
            if change == "reopened":
                row["note"] = None
                self.trail.append(dict(incident_id=row["id"], at=now, actor=SYSTEM, action="reopened", detail={
                    "signal_id": signal["signal_id"], "closed_as": latest["disposition"]}))
            if silence is not None:
                row["silenced_by"] = silence
            if row["id"] not in self.opened and row["id"] not in self.updated:  # first touch in this batch
                self.read_versions[row["id"]] = latest["version"]
                row["version"] = latest["version"] + 1  # as it will be stored
            (self.opened if row["id"] in self.opened else self.updated)[row["id"]] = row
            self.trail.append(dict(incident_id=row["id"], at=now, actor=SYSTEM, action="evidence_added", detail={
                "signal_id": signal["signal_id"], "score": draft.score, "severity": draft.severity}))
        # The site's latest incident by opening time, as the next signal's read would find it.
        # (One corner differs from re-reading: a late signal that moves this incident's opening
        # before an older stored incident's; the batch keeps following this one.)
        if latest is None or row["id"] == latest["id"] or row["opened_at"] >= latest["opened_at"]:
            self.latest[site_id] = row
        self.known.add(signal["signal_id"])
        self.evidence.append(dict(
            signal_id=signal["signal_id"], incident_id=row["id"], source_kind=signal["source_kind"],
            source_id=signal["source_id"], kind=signal["kind"], ts=signal["ts"], strength=signal["strength"],
            summary=signal["summary"], details=signal.get("details") or {}, evidence=signal.get("evidence") or []))
        return dict(row), change

    def write(self, c) -> None:
        # Incidents first: evidence rows refer to them. A stored incident is written only
        # over the version this batch read (IncidentChanged otherwise: the batch is redone).
        if self.opened:
            c.execute(incidents.insert(), list(self.opened.values()))
        for incident_id, row in self.updated.items():
            _update_incident(c, {**row, "version": self.read_versions[incident_id]},
                             **{k: v for k, v in row.items() if k not in ("id", "version")})
        if self.evidence:
            c.execute(incident_signals.insert(), self.evidence)
            c.execute(audit.insert(), self.trail)


_NEW_INCIDENT = {column.name: None for column in incidents.c}
