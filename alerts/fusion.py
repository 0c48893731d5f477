"""Fusion: signals for one site become one incident, scored and ranked.

Plain logic, no Kafka and no database: ``fuse`` takes the site's open incident (or
None), one signal and the rules, and returns the incident as it is now. The score, in
plain words:

1. Each source kind (vision, power, fence) counts once, with its strongest signal in the
   incident: ``evidence_k = weight_k x strength_k``.
2. Independent sources corroborate as a noisy-OR: ``1 - (1 - e_vision)(1 - e_power)(1 - e_fence)``,
   the chance that at least one of them is right if each alone is right with ``e_k``.
3. When two or more kinds agree, ``corroboration_bonus`` is added per extra kind.
4. The site's ledger sets a prior: a sealed shaft weighs more than a licensed mine, and
   past confirmed incidents at the site raise it (``repeat_site_bonus`` each, capped).
5. Night (local) multiplies by ``night_factor``; a watchlist hit adds ``watchlist_bonus``.
6. The result is clamped to 0..1 and mapped to a severity by ``severity_thresholds``.

The open list is ranked by score, then by age (older first).

Which incident a signal joins, and when the system itself may act on an incident, is
decided from facts kept with the incident, never from a process's idea of the time:

- a signal joins the site's latest incident when its source time is within ``window_s`` of
  the incident's evidence (source times), unless a person resolved that incident;
- an incident the system closed for being quiet (``AUTO_CLOSED``) takes evidence within its
  window again and reopens, so a theft stays one incident with all its evidence;
- quiet-close and escalation compare the wall clock with when evidence was *received*
  (``received_at``, ``severity_at``), which every worker reads the same from the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict

from detectors.timeofday import LocalClock

SEVERITIES = ("info", "low", "medium", "high", "critical")
SOURCE_KINDS = ("vision", "power", "fence", "external")
AUTO_CLOSED = "auto_closed_quiet"  # the disposition of a system close: such an incident may reopen


@dataclass(frozen=True)
class FusionRules:
    """Weights and thresholds of fusion (configs/thresholds.yaml, section ``fusion``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    window_s: float = 7200.0  # a signal within this long (source time) of the incident's last one joins it
    # An untouched (new) incident that received no evidence for this long closes itself,
    # unless it ever went above quiet_close_max_severity: those wait for a person.
    quiet_close_s: float = 3600.0
    quiet_close_max_severity: str = "medium"
    # external: evidence no sensor of ours produced (a patrol's finding, a drone team, a
    # verified tip-off), posted through the console API.
    weights: dict[str, float] = field(default_factory=lambda: {"vision": 0.85, "power": 0.9, "fence": 0.7,
                                                               "external": 0.8})
    corroboration_bonus: float = 0.15
    site_priors: dict[str, float] = field(default_factory=lambda: {
        "sealed": 1.0, "resealed": 1.0, "breached": 1.1, "closed": 0.9, "backfilled": 0.6, "active_licensed": 0.3})
    repeat_site_bonus: float = 0.05
    repeat_site_cap: float = 0.15
    night_factor: float = 1.2
    watchlist_bonus: float = 0.2
    severity_thresholds: dict[str, float] = field(default_factory=lambda: {
        "critical": 0.9, "high": 0.7, "medium": 0.45, "low": 0.25})
    notify_min_severity: str = "high"
    escalate_after_s: float = 600.0  # high or critical and still new after this long: escalate
    escalate_min_severity: str = "high"

    def __post_init__(self) -> None:
        for kind, w in self.weights.items():
            if kind not in SOURCE_KINDS or not 0 <= w <= 1:
                raise ValueError(f"weights.{kind}: a source kind ({', '.join(SOURCE_KINDS)}) with a weight in 0..1")
        for name in ("notify_min_severity", "escalate_min_severity", "quiet_close_max_severity"):
            if getattr(self, name) not in SEVERITIES:
                raise ValueError(f"{name} must be one of {list(SEVERITIES)}")
        unknown = set(self.severity_thresholds) - set(SEVERITIES[1:])
        if unknown:
            raise ValueError(f"severity_thresholds: unknown severities {sorted(unknown)}")

    def severity(self, score: float) -> str:
        for name in reversed(SEVERITIES[1:]):
            if score >= self.severity_thresholds.get(name, 2.0):
                return name
        return "info"


def at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


@dataclass
class SiteContext:
    status: str  # from the ledger
    confirmed_incidents: int = 0  # past incidents resolved as illegal mining


RECENT_SIGNALS = 100  # signal ids an incident carries (the newest); the store keeps them all


def signals_counted(signal_count: int, signal_ids: list[str]) -> int:
    """How many signals an incident holds: an incident stored before it counted them holds
    all their ids."""
    return max(signal_count, len(signal_ids))


def nothing_seen() -> dict[str, Any]:
    return {"persons": 0, "vehicles": 0, "power_kw": None, "meter_id": None, "devices": 0,
            "power_kinds": [], "fence_kinds": [], "field_reports": 0}


@dataclass
class IncidentDraft:
    """An incident as fusion sees it; the store keeps it and its lifecycle."""

    incident_id: str
    site_id: str
    opened_at: float  # source time of the oldest signal
    updated_at: float  # source time of the newest signal
    received_at: float = 0.0  # wall time when the newest evidence was stored
    state: str = "new"
    disposition: str | None = None  # how it was resolved (AUTO_CLOSED: by the system, for quiet)
    score: float = 0.0
    severity: str = "info"
    severity_at: dict[str, float] = field(default_factory=dict)  # severity -> wall time first reached
    strongest: dict[str, float] = field(default_factory=dict)  # source kind -> strongest strength
    # The newest RECENT_SIGNALS signals' ids; every one is in the store (incident_signals),
    # and signal_count counts them all. Bounded: an incident a site keeps feeding for weeks
    # (a camera on a road, an hourly reconnection) would otherwise be rewritten and
    # published whole at each signal, and pass Kafka's 1 MB record limit (≈37,000 ids).
    signal_ids: list[str] = field(default_factory=list)
    signal_count: int = 0
    # What all its signals saw (``seen``), kept up to date; None in an incident stored before
    # it was kept, whose signals are then read again.
    seen: dict[str, Any] | None = field(default_factory=nothing_seen)
    kinds: list[str] = field(default_factory=list)  # e.g. vision/person_at_shaft
    night: bool = False
    watchlist: bool = False
    summary: str = ""
    previous_incident_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def incident_id_for(site_id: str, first_signal_id: str) -> str:
    """The dedup key: the site plus the signal that opened the window. A replay of the
    same signals finds the same id."""
    return f"INC-{site_id}-" + hashlib.sha256(f"{site_id}|{first_signal_id}".encode()).hexdigest()[:10]


def score(draft: IncidentDraft, rules: FusionRules, site: SiteContext) -> float:
    miss = 1.0
    for kind, strength in draft.strongest.items():
        miss *= 1.0 - rules.weights.get(kind, 0.5) * strength
    value = 1.0 - miss
    if len(draft.strongest) >= 2:
        value += rules.corroboration_bonus * (len(draft.strongest) - 1)
    prior = rules.site_priors.get(site.status, 1.0)
    prior += min(rules.repeat_site_cap, rules.repeat_site_bonus * site.confirmed_incidents)
    value *= prior
    if draft.night:
        value *= rules.night_factor
    if draft.watchlist:
        value += rules.watchlist_bonus
    return round(max(0.0, min(1.0, value)), 4)


def joins(draft: IncidentDraft | None, signal_ts: float, rules: FusionRules) -> bool:
    """Whether a signal belongs to the site's latest incident: within its window (source
    time), and not resolved by a person (a system close for quiet does not count)."""
    return draft is not None and (draft.state != "resolved" or draft.disposition == AUTO_CLOSED) \
        and signal_ts - draft.updated_at <= rules.window_s and draft.opened_at - signal_ts <= rules.window_s


def fuse(draft: IncidentDraft | None, signal: dict[str, Any], rules: FusionRules, site: SiteContext,
         clock: LocalClock, received_at: float) -> tuple[IncidentDraft, str]:
    """Add one signal, received (stored) at wall time ``received_at``. Returns the incident
    and what happened: opened, updated, reopened or duplicate.

    ``draft`` is the site's latest incident; when a person resolved it or the window has
    passed, a new incident opens and links the old one (a resolved incident is never
    reopened). One the system closed for being quiet reopens with the evidence instead.
    """
    # A repeat of one of the newest signals; the store recognises every older one.
    if draft is not None and signal["signal_id"] in draft.signal_ids:
        return draft, "duplicate"
    change = "updated"
    if not joins(draft, signal["ts"], rules):
        previous = draft.incident_id if draft is not None else None
        draft = IncidentDraft(incident_id_for(signal["site_id"], signal["signal_id"]), signal["site_id"],
                              opened_at=signal["ts"], updated_at=signal["ts"], previous_incident_id=previous)
        change = "opened"
    elif draft.state == "resolved":  # closed by the system for quiet, and the theft goes on
        draft.state, draft.disposition = "new", None
        change = "reopened"
    kind = signal["source_kind"]
    draft.signal_count = signals_counted(draft.signal_count, draft.signal_ids) + 1
    draft.signal_ids = (draft.signal_ids + [signal["signal_id"]])[-RECENT_SIGNALS:]
    if draft.seen is not None:
        add_seen(draft.seen, signal)
    label = f"{kind}/{signal['kind']}"
    if label not in draft.kinds:
        draft.kinds.append(label)
    draft.strongest[kind] = max(draft.strongest.get(kind, 0.0), signal["strength"])
    draft.updated_at = max(draft.updated_at, signal["ts"])
    draft.opened_at = min(draft.opened_at, signal["ts"])
    draft.night = draft.night or clock.is_night(signal["ts"])
    draft.watchlist = draft.watchlist or signal["kind"] == "watchlist_hit"
    draft.received_at = max(draft.received_at, received_at)
    draft.score = score(draft, rules, site)
    draft.severity = rules.severity(draft.score)
    for name in SEVERITIES[:SEVERITIES.index(draft.severity) + 1]:
        draft.severity_at.setdefault(name, received_at)  # reaching critical reaches high too
    draft.summary = summarize(draft)
    return draft, change


def summarize(draft: IncidentDraft) -> str:
    sources = {"vision": "camera", "power": "power", "fence": "phones", "external": "field report"}
    names = [sources[k] for k in SOURCE_KINDS if k in draft.strongest]
    corroboration = f"{len(names)} sources agree ({', '.join(names)})" if len(names) > 1 else f"{names[0]} only"
    when = "at night" if draft.night else "by day"
    return f"{draft.site_id}: {corroboration}, {when}; {', '.join(draft.kinds)}"


VEHICLES = ("car", "truck", "bus", "motorcycle")


def seen(signals: list[dict[str, Any]]) -> dict[str, Any]:
    """What an incident's evidence saw, for a patrol to read at a glance: the most people and
    vehicles one camera finding showed, the most power an unexplained line drew (and which
    meter), and the most devices in the fence zone at once."""
    out = nothing_seen()
    for s in signals:
        add_seen(out, s)
    return out


def add_seen(out: dict[str, Any], s: dict[str, Any]) -> None:
    """One more signal into what an incident's evidence saw (``seen``), in place: fusion keeps
    it up to date in the incident, so a page never reads every signal again."""
    details = s.get("details") or {}
    if s["source_kind"] == "vision":
        labels = details.get("labels") or {}
        out["persons"] = max(out["persons"], int(labels.get("person", 0)))
        out["vehicles"] = max(out["vehicles"], sum(int(labels.get(v, 0)) for v in VEHICLES))
    elif s["source_kind"] == "power":
        kw = details.get("kw")
        if isinstance(kw, (int, float)) and (out["power_kw"] is None or kw > out["power_kw"]):
            out["power_kw"], out["meter_id"] = round(float(kw), 1), s["source_id"]
        if s["kind"] not in out["power_kinds"]:
            out["power_kinds"].append(s["kind"])
    elif s["source_kind"] == "external":
        out["field_reports"] += 1
    elif s["source_kind"] == "fence":
        devices = details.get("devices") or len(details.get("device_pids") or [])
        out["devices"] = max(out["devices"], int(devices))
        if s["kind"] not in out["fence_kinds"]:
            out["fence_kinds"].append(s["kind"])


def highest_severity(draft: IncidentDraft) -> str:
    """The highest severity the incident ever reached (its score never falls, but the
    thresholds may be changed while it is open)."""
    return max(draft.severity_at or {draft.severity: 0.0}, key=SEVERITIES.index)


def escalation_due_at(draft: IncidentDraft, rules: FusionRules) -> float | None:
    """Wall time at which an unacknowledged incident escalates: ``escalate_after_s`` after
    it first reached ``escalate_min_severity``; None if it never did."""
    reached = [at for name, at in draft.severity_at.items() if at_least(name, rules.escalate_min_severity)]
    return min(reached) + rules.escalate_after_s if reached else None


def closes_quietly(draft: IncidentDraft, rules: FusionRules, now: float) -> bool:
    """Whether the system closes this incident at wall time ``now``: nobody is working it,
    no evidence was received for ``quiet_close_s``, and it never went above
    ``quiet_close_max_severity`` (a high or critical incident waits for a person)."""
    return draft.state == "new" and now - draft.received_at >= rules.quiet_close_s \
        and at_least(rules.quiet_close_max_severity, highest_severity(draft))


def rank_key(incident: dict[str, Any]) -> tuple:
    """Score first (highest on top), then age (the older first)."""
    return (-incident["score"], incident["opened_at"])
