"""Power rules on plain series: each finding fires when it should and clean series stay quiet."""

from __future__ import annotations

import random

import pytest

from detectors.power import MeterSpec, PowerRules, check_silence, new_state, observe, seen_intervals
from detectors.timeofday import LocalClock

RULES = PowerRules()
CLOCK = LocalClock()
STEP = 900


def local_ts(year, month, day, hour, minute=0) -> float:
    return CLOCK.epoch(year, month, day, hour + minute / 60)


CUT = MeterSpec("M-0001", "S01", "mine_supply", True, 250)
VILLAGE = MeterSpec("M-0033", "S01", "village", False, 160)
PUMP = MeterSpec("M-0009", "S01", "irrigation", False, 22, irrigation_months=(4, 5, 6, 7, 8), irrigation_hours=(6, 20),
                 pump_kw=15)


def village_kw(ts: float, rng: random.Random) -> float:
    hour = CLOCK.hour(ts)
    return (10.0 if hour < 6 or hour >= 22 else 25.0) * rng.uniform(0.95, 1.05)


def feed(spec, state, start, intervals, kw_of, **kw):
    found = []
    for i in range(intervals):
        ts = start + i * STEP
        found += observe(spec, RULES, CLOCK, state, ts, power_kw=kw_of(ts), **kw) or []
    return found


def test_reconnection_fires_on_the_first_interval_and_repeats_hourly():
    state = new_state()
    start = local_ts(2026, 11, 1, 0)
    assert feed(CUT, state, start, 96, lambda ts: 0.0) == []
    theft_start = start + 96 * STEP
    found = feed(CUT, state, theft_start, 9, lambda ts: 30.0)
    assert [f.kind for f in found] == ["reconnection"] * 3  # intervals 1, 5 and 9
    first = found[0]
    assert first.ts == theft_start and first.episode_start == theft_start
    assert "cut" in first.why and "30.0 kW" in first.seen and first.strength >= 0.9
    assert observe(CUT, RULES, CLOCK, state, theft_start, power_kw=30.0) is None  # re-sent: ignored


def test_noise_on_a_cut_line_is_not_a_reconnection():
    state = new_state()
    rng = random.Random(3)
    assert feed(CUT, state, local_ts(2026, 11, 1, 0), 96 * 7, lambda ts: rng.uniform(0, 0.3)) == []


def test_baseline_deviation_after_warm_up_only():
    rng = random.Random(1)
    state = new_state()
    start = local_ts(2026, 11, 2, 0)  # a Monday
    # Day 1 at 14:00, a huge draw: no baseline yet, so no deviation (warm-up).
    early = feed(VILLAGE, state, start, 96, lambda ts: 120.0 if ts == start + 56 * STEP else village_kw(ts, rng))
    assert [f for f in early if f.kind == "baseline_deviation"] == []
    feed(VILLAGE, state, start + 96 * STEP, 96 * 13, lambda ts: village_kw(ts, rng))
    spike_at = start + 96 * 14 * STEP + 56 * STEP  # day 15, 14:00
    found = observe(VILLAGE, RULES, CLOCK, state, spike_at, power_kw=120.0)
    assert [f.kind for f in found] == ["baseline_deviation"]
    assert found[0].expected.startswith("about 2") and found[0].details["score"] > RULES.deviation_score


def test_irrigation_outside_season_and_overload_at_night():
    state = new_state()
    winter_noon = local_ts(2026, 12, 10, 12)
    found = feed(PUMP, state, winter_noon, 3, lambda ts: 12.0)
    assert [f.kind for f in found] == ["irrigation_off_plan"]  # on the 2nd interval
    assert "season" in found[0].why
    summer_night = local_ts(2026, 7, 10, 1)
    state = new_state()
    found = feed(PUMP, state, summer_night, 2, lambda ts: 40.0)
    assert {f.kind for f in found} == {"irrigation_off_plan", "irrigation_overload"}
    state = new_state()
    assert feed(PUMP, state, local_ts(2026, 7, 10, 9), 8, lambda ts: 14.0) == []  # pumping as planned


def test_steady_night_load_over_hours():
    rng = random.Random(2)
    state = new_state()
    start = local_ts(2026, 11, 2, 0)
    feed(VILLAGE, state, start, 96 * 14, lambda ts: village_kw(ts, rng))
    night = local_ts(2026, 11, 16, 0)
    found = feed(VILLAGE, state, night, 8, lambda ts: 45.0 + rng.uniform(-1, 1))
    kinds = [f.kind for f in found]
    assert kinds.count("night_industrial_load") == 1 and kinds[-1] == "night_industrial_load"
    assert "steady" in found[-1].seen and found[-1].details["intervals"] == 8


def test_register_jump_after_zero_readings():
    rng = random.Random(4)
    state = new_state()
    start = local_ts(2026, 11, 2, 0)
    register = [1000.0]

    def kw_and_register(ts, kw):
        register[0] += kw * STEP / 3600
        return observe(VILLAGE, RULES, CLOCK, state, ts, power_kw=kw, register_kwh=register[0])

    for i in range(96 * 10):
        kw_and_register(start + i * STEP, village_kw(start + i * STEP, rng))
    t = start + 96 * 10 * STEP  # day 11, midnight: right after the history, no gap
    for i in range(6):  # reads zero while the register keeps counting
        register[0] += 25.0 * STEP / 3600
        assert observe(VILLAGE, RULES, CLOCK, state, t + i * STEP, power_kw=0.0, register_kwh=register[0]) == []
    found = kw_and_register(t + 6 * STEP, 25.0)
    assert [f.kind for f in found] == ["register_jump_after_zeros"]
    assert found[0].details["unreported_kwh"] == pytest.approx(6 * 25.0 / 4, rel=0.01)


def test_register_reset_is_not_a_finding():
    state = new_state()
    start = local_ts(2026, 11, 2, 12)
    observe(VILLAGE, RULES, CLOCK, state, start, power_kw=20, register_kwh=99999.0)
    assert observe(VILLAGE, RULES, CLOCK, state, start + STEP, power_kw=20, register_kwh=5.0) == []
    assert state["resets"] == 1


def test_late_reading_updates_baseline_but_not_sequences():
    state = new_state()
    start = local_ts(2026, 11, 2, 0)
    feed(CUT, state, start, 4, lambda ts: 0.0)
    assert observe(CUT, RULES, CLOCK, state, start - 10 * STEP, power_kw=0.0) == []
    assert state["last_ts"] == start + 3 * STEP
    assert observe(CUT, RULES, CLOCK, state, start - 2 * 86400, power_kw=0.0) is None  # beyond the late limit


def test_each_interval_counts_once_whatever_the_order_of_arrival():
    state = new_state()
    start = local_ts(2026, 11, 2, 0)
    day = [start + i * STEP for i in range(96)]
    shuffled = day[:]
    random.Random(5).shuffle(shuffled)
    used = [observe(VILLAGE, RULES, CLOCK, state, ts, power_kw=20.0) is not None for ts in shuffled]
    assert all(used) and seen_intervals(state) == 96
    # The whole day re-sent, and the same intervals stamped a few seconds off: all ignored.
    assert all(observe(VILLAGE, RULES, CLOCK, state, ts + offset, power_kw=20.0) is None
               for ts in day for offset in (0, 7, -7))
    # A week later the old intervals are forgotten (they are past the late limit anyway).
    feed(VILLAGE, state, start + 7 * 86400, 4, lambda ts: 20.0)
    assert seen_intervals(state) == 4


def test_silence_once_per_episode():
    state = new_state()
    start = local_ts(2026, 11, 2, 12)
    feed(VILLAGE, state, start, 4, lambda ts: 20.0)
    last = start + 3 * STEP
    assert check_silence(VILLAGE, RULES, state, last + 3 * STEP) is None
    found = check_silence(VILLAGE, RULES, state, last + 5 * STEP)
    assert found.kind == "meter_silent" and "nothing for 5 intervals" in found.seen
    assert check_silence(VILLAGE, RULES, state, last + 9 * STEP) is None
    observe(VILLAGE, RULES, CLOCK, state, last + 10 * STEP, power_kw=20.0)
    assert state["silent_since"] is None


def test_clean_demo_county_month_is_quiet():
    """30 days of the demo county's clean series (every meter): no finding at all."""
    from streams.config import load_config
    from streams.ops.demo import meter_power_kw
    from tests.helpers import REPO

    cfg = load_config(REPO / "configs")
    rng = random.Random(11)
    start = local_ts(2026, 6, 1, 0)
    findings = []
    for m in cfg.meters.meters:
        state = new_state()
        findings += feed(m.spec(), state, start, 96 * 30, lambda ts: meter_power_kw(m, ts, CLOCK, rng))
    assert findings == [], [(f.kind, f.meter_id, f.seen) for f in findings[:5]]
