"""Scoring and ranking as the README documents them."""

from __future__ import annotations

import calendar
import dataclasses

import pytest

from alerts.fusion import FusionRules, SiteContext, fuse, rank_key
from detectors.timeofday import LocalClock

CLOCK = LocalClock()
NIGHT = calendar.timegm((2026, 11, 23, 2, 0, 0)) - 8 * 3600  # 02:00 local
DAY = NIGHT + 12 * 3600
SEALED = SiteContext("sealed")


def signal(sid, site, kind, strength, ts, name="k"):
    return {"signal_id": sid, "site_id": site, "source_kind": kind, "source_id": "x", "kind": name,
            "ts": ts, "strength": strength, "summary": ""}


def build(signals, rules=FusionRules(), site=SEALED):
    draft = None
    for s in signals:
        draft, _ = fuse(draft, s, rules, site, CLOCK)
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
    draft, change = fuse(None, s, FusionRules(), SEALED, CLOCK)
    again, change2 = fuse(draft, s, FusionRules(), SEALED, CLOCK)
    assert (change, change2) == ("opened", "duplicate") and again.signal_ids == ["a"]


def test_window_and_resolved_incidents_open_new_ones():
    rules = FusionRules(window_s=3600)
    draft, _ = fuse(None, signal("a", "S01", "power", 0.5, DAY), rules, SEALED, CLOCK)
    later, change = fuse(draft, signal("b", "S01", "power", 0.5, DAY + 3 * 3600), rules, SEALED, CLOCK)
    assert change == "opened" and later.previous_incident_id == draft.incident_id
    draft.state = "resolved"
    reopened, change = fuse(draft, signal("c", "S01", "power", 0.5, DAY + 60), rules, SEALED, CLOCK)
    assert change == "opened" and reopened.incident_id != draft.incident_id


def test_severity_mapping_and_rule_validation():
    rules = FusionRules()
    assert [rules.severity(x) for x in (0.1, 0.3, 0.5, 0.75, 0.95)] == ["info", "low", "medium", "high", "critical"]
    with pytest.raises(ValueError, match="weights.radar"):
        FusionRules(weights={"radar": 0.5})
