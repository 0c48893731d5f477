"""Scoring and ranking as the README documents them."""

from __future__ import annotations

import dataclasses

import pytest

from alerts.fusion import (AUTO_CLOSED, RECENT_SIGNALS, FusionRules, IncidentDraft, SiteContext, closes_quietly,
                           escalation_due_at, fuse, rank_key)
from detectors.timeofday import LocalClock

CLOCK = LocalClock()
NIGHT = CLOCK.epoch(2026, 11, 23, 2)  # 02:00 local
DAY = NIGHT + 12 * 3600
SEALED = SiteContext("sealed")
RECEIVED = 1_800_000_000.0  # wall time the evidence is stored: unrelated to the sources' clocks


def signal(sid, site, kind, strength, ts, name="k"):
    return {"signal_id": sid, "site_id": site, "source_kind": kind, "source_id": "x", "kind": name,
            "ts": ts, "strength": strength, "summary": ""}


def build(signals, rules=FusionRules(), site=SEALED):
    draft = None
    for s in signals:
        draft, _ = fuse(draft, s, rules, site, CLOCK, RECEIVED)
    return draft


def test_noisy_or_with_corroboration_bonus_prior_and_night():
    rules = FusionRules()
    one = build([signal("a", "S01", "power", 0.8, DAY)])
    assert one.score == pytest.approx(0.9 * 0.8)
    two = build([signal("a", "S01", "power", 0.8, DAY), signal("b", "S01", "fence", 0.5, DAY + 60)])
    expected = 1 - (1 - 0.72) * (1 - 0.35) + rules.corroboration_bonus
    assert two.score == pytest.approx(expected, abs=1e-4)
    at_night = build([signal("a", "S01", "power", 0.5, NIGHT)])
    assert at_night.score == pytest.approx(0.45 * 1.2) and at_night.night
    closed = build([signal("a", "S01", "power", 0.5, DAY)], site=SiteContext("backfilled"))
    assert closed.score == pytest.approx(0.45 * 0.6)
    repeat = build([signal("a", "S01", "power", 0.5, DAY)], site=SiteContext("sealed", confirmed_incidents=5))
    assert repeat.score == pytest.approx(0.45 * 1.15)


def test_corroborated_outranks_single_source_and_weights_change_the_ranking():
    corroborated = build([signal("a", "S01", "vision", 0.5, NIGHT), signal("b", "S01", "power", 0.5, NIGHT + 60),
                          signal("c", "S01", "fence", 0.4, NIGHT + 120)])
    single = build([signal("d", "S02", "power", 0.85, NIGHT - 600)])
    ranked = sorted([single.as_dict() | {"score": single.score}, corroborated.as_dict()], key=rank_key)
    assert [i["site_id"] for i in ranked] == ["S01", "S02"]
    assert corroborated.severity == "critical" and corroborated.score > single.score

    # A documented effect of a weight: trusting cameras less lowers a camera-only incident below
    # a power-only one of the same strength.
    cam = [signal("e", "S03", "vision", 0.8, DAY)]
    power = [signal("f", "S04", "power", 0.8, DAY - 60)]
    default = FusionRules()
    assert build(cam, default).score < build(power, default).score  # 0.85 vs 0.9
    camera_first = dataclasses.replace(default, weights={"vision": 0.95, "power": 0.9, "fence": 0.7})
    assert build(cam, camera_first).score > build(power, camera_first).score


def test_same_signal_twice_is_one_piece_of_evidence():
    s = signal("a", "S01", "power", 0.8, DAY)
    draft, change = fuse(None, s, FusionRules(), SEALED, CLOCK, RECEIVED)
    again, change2 = fuse(draft, s, FusionRules(), SEALED, CLOCK, RECEIVED)
    assert (change, change2) == ("opened", "duplicate") and again.signal_ids == ["a"]


def test_window_and_resolved_incidents_open_new_ones():
    rules = FusionRules(window_s=3600)
    draft, _ = fuse(None, signal("a", "S01", "power", 0.5, DAY), rules, SEALED, CLOCK, RECEIVED)
    later, change = fuse(draft, signal("b", "S01", "power", 0.5, DAY + 3 * 3600), rules, SEALED, CLOCK, RECEIVED)
    assert change == "opened" and later.previous_incident_id == draft.incident_id
    draft.state = "resolved"
    reopened, change = fuse(draft, signal("c", "S01", "power", 0.5, DAY + 60), rules, SEALED, CLOCK, RECEIVED)
    assert change == "opened" and reopened.incident_id != draft.incident_id


def test_severity_mapping_and_rule_validation():
    rules = FusionRules()
    assert [rules.severity(x) for x in (0.1, 0.3, 0.5, 0.75, 0.95)] == ["info", "low", "medium", "high", "critical"]
    with pytest.raises(ValueError, match="weights.radar"):
        FusionRules(weights={"radar": 0.5})


def test_a_system_closed_incident_takes_evidence_in_its_window_and_reopens():
    """A quiet-close by the system does not bury evidence: within the window the same
    incident reopens with it (and keeps its strongest evidence); a person's resolve is final."""
    rules = FusionRules(window_s=3600)
    draft, _ = fuse(None, signal("a", "S01", "fence", 0.5, NIGHT), rules, SEALED, CLOCK, RECEIVED)
    draft.state, draft.disposition = "resolved", AUTO_CLOSED
    back, change = fuse(draft, signal("b", "S01", "power", 0.9, NIGHT + 1800), rules, SEALED, CLOCK, RECEIVED + 5000)
    assert change == "reopened" and back.incident_id == draft.incident_id
    assert (back.state, back.disposition, back.signal_ids) == ("new", None, ["a", "b"])
    assert back.severity == "critical" and set(back.strongest) == {"fence", "power"}
    back.state, back.disposition = "resolved", "false_alarm"
    new, change = fuse(back, signal("c", "S01", "power", 0.9, NIGHT + 1900), rules, SEALED, CLOCK, RECEIVED + 6000)
    assert change == "opened" and new.previous_incident_id == back.incident_id


def test_quiet_close_and_escalation_follow_receipt_times_not_source_times():
    """Decided from what the incident holds: when evidence was received and when each
    severity was first reached, against the wall clock. Source times (here a day old)
    play no part, so a backfill or a shifted clock neither closes nor delays anything."""
    rules = FusionRules(quiet_close_s=3600, escalate_after_s=600)
    yesterday = NIGHT - 86400
    low = build([signal("a", "S01", "fence", 0.3, yesterday)])
    assert low.severity == "low" and low.received_at == RECEIVED
    assert not closes_quietly(low, rules, RECEIVED + 3599) and closes_quietly(low, rules, RECEIVED + 3600)
    assert escalation_due_at(low, rules) is None  # never reached high

    draft, _ = fuse(None, signal("b", "S02", "fence", 0.3, NIGHT), rules, SEALED, CLOCK, RECEIVED)
    draft, _ = fuse(draft, signal("c", "S02", "power", 0.95, NIGHT + 60), rules, SEALED, CLOCK, RECEIVED + 120)
    assert draft.severity == "critical" and draft.severity_at["high"] == draft.severity_at["critical"] == RECEIVED + 120
    assert draft.severity_at["low"] == RECEIVED
    assert escalation_due_at(draft, rules) == RECEIVED + 120 + 600
    # High and critical incidents are never closed by the system: they wait for a person.
    assert not closes_quietly(draft, rules, RECEIVED + 10 * 86400)
    draft.state = "acknowledged"
    assert not closes_quietly(low.__class__(**{**low.as_dict(), "state": "acknowledged"}), rules, RECEIVED + 86400)


def test_an_incident_keeps_its_newest_signal_ids_and_counts_every_signal():
    signals = [signal(f"s{i}", "S01", "power", 0.5, NIGHT + i * 600) for i in range(RECENT_SIGNALS + 50)]
    draft = build(signals)
    assert draft.signal_count == RECENT_SIGNALS + 50
    assert draft.signal_ids == [s["signal_id"] for s in signals[-RECENT_SIGNALS:]]
    again, change = fuse(draft, signals[-1], FusionRules(), SEALED, CLOCK, RECEIVED)
    assert change == "duplicate" and again.signal_count == RECENT_SIGNALS + 50
    # A draft stored before the count existed holds every id it had: they are its count.
    old = IncidentDraft("INC-S01-x", "S01", NIGHT, NIGHT, signal_ids=[f"o{i}" for i in range(150)])
    grown, _ = fuse(old, signal("new", "S01", "power", 0.5, NIGHT + 60), FusionRules(), SEALED, CLOCK, RECEIVED)
    assert grown.signal_count == 151 and len(grown.signal_ids) == RECENT_SIGNALS and grown.signal_ids[-1] == "new"
