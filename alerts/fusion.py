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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict

from detectors.timeofday import LocalClock

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class FusionRules:
    """Weights and thresholds of fusion (configs/thresholds.yaml, section ``fusion``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    window_s: float = 7200.0  # a signal within this long of the incident's last one joins it
    quiet_close_s: float = 3600.0  # an untouched (new) incident with no signal this long closes itself
    weights: dict[str, float] = field(default_factory=lambda: {"vision": 0.85, "power": 0.9, "fence": 0.7})
    corroboration_bonus: float = 0.15
    site_priors: dict[str, float] = field(default_factory=lambda: {
        "sealed": 1.0, "closed": 0.9, "backfilled": 0.6, "active_licensed": 0.3})
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
            if kind not in ("vision", "power", "fence") or not 0 <= w <= 1:
                raise ValueError(f"weights.{kind}: a source kind (vision, power, fence) with a weight in 0..1")
        for name in ("notify_min_severity", "escalate_min_severity"):
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


@dataclass
class IncidentDraft:
    """An incident as fusion sees it; the store keeps it and its lifecycle."""

    incident_id: str
    site_id: str
    opened_at: float
    updated_at: float  # source time of the newest signal
    state: str = "new"
    score: float = 0.0
    severity: str = "info"
    strongest: dict[str, float] = field(default_factory=dict)  # source kind -> strongest strength
    signal_ids: list[str] = field(default_factory=list)
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
    """Whether a signal belongs to the site's open incident (not resolved, within the window)."""
    return draft is not None and draft.state != "resolved" and signal_ts - draft.updated_at <= rules.window_s \
        and draft.opened_at - signal_ts <= rules.window_s


def fuse(draft: IncidentDraft | None, signal: dict[str, Any], rules: FusionRules, site: SiteContext,
         clock: LocalClock) -> tuple[IncidentDraft, str]:
    """Add one signal. Returns the incident and what happened: opened, updated or duplicate.

    ``draft`` is the site's latest incident; when it is resolved or the window has passed,
    a new incident opens and links the old one (a resolved incident is never reopened).
    """
    if draft is not None and signal["signal_id"] in draft.signal_ids:
        return draft, "duplicate"
    change = "updated"
    if not joins(draft, signal["ts"], rules):
        previous = draft.incident_id if draft is not None else None
        draft = IncidentDraft(incident_id_for(signal["site_id"], signal["signal_id"]), signal["site_id"],
                              opened_at=signal["ts"], updated_at=signal["ts"], previous_incident_id=previous)
        change = "opened"
    kind = signal["source_kind"]
    draft.signal_ids.append(signal["signal_id"])
    label = f"{kind}/{signal['kind']}"
    if label not in draft.kinds:
        draft.kinds.append(label)
    draft.strongest[kind] = max(draft.strongest.get(kind, 0.0), signal["strength"])
    draft.updated_at = max(draft.updated_at, signal["ts"])
    draft.opened_at = min(draft.opened_at, signal["ts"])
    draft.night = draft.night or clock.is_night(signal["ts"])
    draft.watchlist = draft.watchlist or signal["kind"] == "watchlist_hit"
    draft.score = score(draft, rules, site)
    draft.severity = rules.severity(draft.score)
    draft.summary = summarize(draft)
    return draft, change


def summarize(draft: IncidentDraft) -> str:
    sources = {"vision": "camera", "power": "power", "fence": "phones"}
    names = [sources[k] for k in ("vision", "power", "fence") if k in draft.strongest]
    corroboration = f"{len(names)} sources agree ({', '.join(names)})" if len(names) > 1 else f"{names[0]} only"
    when = "at night" if draft.night else "by day"
    return f"{draft.site_id}: {corroboration}, {when}; {', '.join(draft.kinds)}"


def rank_key(incident: dict[str, Any]) -> tuple:
    """Score first (highest on top), then age (the older first)."""
    return (-incident["score"], incident["opened_at"])
