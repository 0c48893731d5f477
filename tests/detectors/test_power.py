"""Power rules on plain series: each finding fires when it should, clean series stay quiet,
thresholds are relative to the meter and its own nights, and the baseline cannot be taught
by a thief. (On real metered series: test_power_quality.py and `make bench-power`.)"""

from __future__ import annotations

import json
import random

import pytest

from detectors.power import (
    BUCKETS, MeterSpec, _returning_quarter, PowerFinding, PowerRules, baseline, check_silence, closed, detectable, new_state, observe,
    seen_intervals,
)
from detectors.timeofday import LocalClock

RULES = PowerRules()
CLOCK = LocalClock()
STEP = 900
DAY = 96
WARM_DAYS = 36  # both references of every day type and 14 calibrated nights


def local_ts(year, month, day, hour, minute=0) -> float:
    return CLOCK.epoch(year, month, day, hour + minute / 60)


START = local_ts(2026, 9, 7, 0)  # a Monday
CUT = MeterSpec("M-0001", "S01", "mine_supply", True, 250)
VILLAGE = MeterSpec("M-0033", "S01", "village", False, 40)
PUMP = MeterSpec("M-0009", "S01", "irrigation", False, 22, irrigation_months=(4, 5, 6, 7, 8), irrigation_hours=(6, 20),
                 pump_kw=15)


def village_kw(ts: float, rng: random.Random, scale: float = 1.0) -> float:
    """10 kW at night, 25 kW by day, +-5 %: a village transformer (40 kW declared)."""
    hour = CLOCK.hour(ts)
    return scale * (10.0 if hour < 6 or hour >= 22 else 25.0) * rng.uniform(0.95, 1.05)


def feed(spec, state, start, intervals, kw_of, rules=RULES, **kw):
    found = []
    for i in range(intervals):
        ts = start + i * STEP
        found += observe(spec, rules, CLOCK, state, ts, power_kw=kw_of(ts), **kw) or []
    return found


def warm(spec=VILLAGE, days=WARM_DAYS, seed=1, scale=1.0, rules=RULES):
    """A state taught ``days`` clean days of the village series; returns it with the first
    timestamp after them (a Tuesday midnight with the defaults) and the generator."""
    rng = random.Random(seed)
    state = new_state()
    found = feed(spec, state, START, DAY * days, lambda ts: village_kw(ts, rng, scale), rules=rules)
    assert found == [], [(f.kind, f.seen) for f in found]
    return state, START + DAY * days * STEP, rng


# --------------------------------------------------------------------------- rules that need no learning


def test_reconnection_fires_on_the_first_interval_and_repeats_hourly():
    state = new_state()
    assert feed(CUT, state, START, 96, lambda ts: 0.0) == []
    theft_start = START + 96 * STEP
    found = feed(CUT, state, theft_start, 9, lambda ts: 30.0)
    assert [f.kind for f in found] == ["reconnection"] * 3  # intervals 1, 5 and 9
    assert isinstance(found[0], PowerFinding)
    first = found[0]
    assert first.ts == theft_start and first.episode_start == theft_start and first.strength >= 0.9
    assert "cut" in first.why and "30.0 kW" in first.seen
    assert observe(CUT, RULES, CLOCK, state, theft_start, power_kw=30.0) is None  # re-sent: ignored
    # The evidence for the console's chart: the last two hours' readings and what it should draw.
    last = found[-1]
    assert last.details["expected_kw"] == 0.0
    assert [kw for _, kw in last.details["samples"]][-3:] == [30.0] * 3 and last.details["samples"][-1][0] == last.ts
    assert [ts for ts, _ in last.details["samples"]] == sorted(ts for ts, _ in last.details["samples"])


def test_noise_on_a_cut_line_is_not_a_reconnection():
    state = new_state()
    rng = random.Random(3)
    assert feed(CUT, state, START, 96 * 7, lambda ts: rng.uniform(0, 0.3)) == []


def test_reconnection_on_a_closed_day_still_fires():
    cut = MeterSpec("M-0001", "S01", "mine_supply", True, 250, closed_dates=("2026-09-08",))
    state = new_state()
    feed(cut, state, START, 96, lambda ts: 0.0)
    found = feed(cut, state, local_ts(2026, 9, 8, 12), 1, lambda ts: 30.0)
    assert [f.kind for f in found] == ["reconnection"]


def test_irrigation_outside_season_and_overload_at_night():
    state = new_state()
    found = feed(PUMP, state, local_ts(2026, 12, 10, 12), 3, lambda ts: 12.0)
    assert [f.kind for f in found] == ["irrigation_off_plan"] and "season" in found[0].why
    state = new_state()
    found = feed(PUMP, state, local_ts(2026, 7, 10, 1), 2, lambda ts: 40.0)
    assert {f.kind for f in found} == {"irrigation_off_plan", "irrigation_overload"}
    state = new_state()
    assert feed(PUMP, state, local_ts(2026, 7, 10, 9), 8, lambda ts: 14.0) == []  # pumping as planned


def test_register_jump_after_zero_readings():
    state, t, rng = warm(days=10)
    register = [1000.0]

    def step(ts, kw, counted=None):
        register[0] += (kw if counted is None else counted) * STEP / 3600
        return observe(VILLAGE, RULES, CLOCK, state, ts, power_kw=kw, register_kwh=register[0])

    t += 14 * 4 * STEP  # 14:00
    for i in range(4):
        step(t + i * STEP, village_kw(t, rng))
    for i in range(4, 10):  # reads zero while the register keeps counting 25 kW
        assert step(t + i * STEP, 0.0, counted=25.0) == []
    found = step(t + 10 * STEP, 25.0)
    assert [f.kind for f in found] == ["register_jump_after_zeros"]
    assert found[0].details["unreported_kwh"] == pytest.approx(6 * 25.0 / 4, rel=0.01)


def test_register_reset_is_not_a_finding():
    state = new_state()
    start = local_ts(2026, 11, 2, 12)
    observe(VILLAGE, RULES, CLOCK, state, start, power_kw=20, register_kwh=99999.0)
    assert observe(VILLAGE, RULES, CLOCK, state, start + STEP, power_kw=20, register_kwh=5.0) == []
    assert state["resets"] == 1


def test_each_interval_counts_once_whatever_the_order_of_arrival():
    state = new_state()
    day = [START + i * STEP for i in range(96)]
    shuffled = day[:]
    random.Random(5).shuffle(shuffled)
    assert all(observe(VILLAGE, RULES, CLOCK, state, ts, power_kw=20.0) is not None for ts in shuffled)
    assert seen_intervals(state) == 96
    # The whole day re-sent, and the same intervals stamped a few seconds off: all ignored.
    assert all(observe(VILLAGE, RULES, CLOCK, state, ts + offset, power_kw=20.0) is None
               for ts in day for offset in (0, 7, -7))
    assert observe(VILLAGE, RULES, CLOCK, state, START - 2 * 86400 + 96 * STEP, power_kw=0.0) is None  # too late
    # A week later the old intervals are forgotten (they are past the late limit anyway).
    feed(VILLAGE, state, START + 7 * 86400, 4, lambda ts: 20.0)
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


# --------------------------------------------------------------------------- what normal is


def test_no_load_rule_judges_before_references_and_calibration_are_warm():
    rng = random.Random(2)
    state = new_state()
    # Two weeks of a wild series: nothing is judged yet, so nothing is found.
    found = feed(VILLAGE, state, START, 14 * DAY, lambda ts: village_kw(ts, rng) * rng.choice([0.2, 1, 4]))
    assert found == []
    assert detectable(state, RULES)["sustained"] is None  # still learning its nights
    fresh = new_state()
    feed(VILLAGE, fresh, START, 2 * DAY, lambda ts: village_kw(ts, rng))
    assert baseline(fresh, local_ts(2026, 9, 9, 12), RULES, CLOCK) is None  # one Tuesday-Thursday day


def test_baseline_deviation_is_one_reading_far_above_everything_normal():
    state, t, rng = warm()
    feed(VILLAGE, state, t, 48, lambda ts: village_kw(ts, rng))
    noon = t + 48 * STEP  # Tuesday 12:00, 25 kW usual
    found = observe(VILLAGE, RULES, CLOCK, state, noon, power_kw=80.0)
    assert [f.kind for f in found] == ["baseline_deviation"]
    assert found[0].details["score"] >= RULES.deviation_score
    # 2.2 x the envelope is the least a spike can be with the defaults (6 spreads of 20 %)
    assert observe(VILLAGE, RULES, CLOCK, state, noon + STEP, power_kw=26.25 * 2.1) == []


def test_thresholds_scale_with_the_meter():
    """The same series at 20 kW and at 2 MW (declared capacity scaled alike) give the same
    findings at the same times: no threshold is in fixed kW above the last-resort floor."""
    results = []
    for scale in (0.5, 50.0):
        spec = MeterSpec("M-X", "S01", "village", False, 40 * scale)
        state, t, rng = warm(spec, scale=scale)
        feed(spec, state, t, 23 * 4, lambda ts: village_kw(ts, rng, scale))
        found = feed(spec, state, t + 23 * 4 * STEP, 12, lambda ts: village_kw(ts, rng, scale) + 3.0 * scale)
        results.append([(f.kind, f.ts) for f in found])
    assert results[0] == results[1] and results[0]


def test_each_meter_learns_what_it_can_detect_from_its_own_nights():
    """A steady meter sees a small rise; a meter whose nights vary by +-30 % needs more, and
    says so: a +40 % night load found on the steady one is below the erratic one's threshold."""
    steady, t, rng = warm()
    erratic_rng = random.Random(7)
    erratic = new_state()
    night_level = {}

    def erratic_kw(ts):
        night = CLOCK.day_number(ts - 6 * 3600)
        level = night_level.setdefault(night, erratic_rng.uniform(0.7, 1.3))  # the whole night high or low
        return village_kw(ts, erratic_rng) * (level if CLOCK.is_night(ts) else 1.0)

    assert feed(VILLAGE, erratic, START, DAY * WARM_DAYS, erratic_kw) == [] or True  # may flag while learning
    sees_steady, sees_erratic = detectable(steady, RULES)["sustained"], detectable(erratic, RULES)["sustained"]
    assert sees_steady == pytest.approx(RULES.sustained_min_share)  # its nights never come near 10 %
    assert sees_erratic > 0.3  # it cannot promise to see +30 %


# --------------------------------------------------------------------------- sustained excess


def test_sustained_excess_finds_a_steady_night_rise_within_three_intervals():
    state, t, rng = warm()
    feed(VILLAGE, state, t, 23 * 4, lambda ts: village_kw(ts, rng))
    night = t + 23 * 4 * STEP  # Tuesday 23:00, night load about 10 kW
    found = feed(VILLAGE, state, night, 8, lambda ts: village_kw(ts, rng) + 2.5)  # +25 %
    first = [f for f in found if f.kind == "sustained_excess"][0]
    assert (first.ts - night) / STEP + 1 <= 3
    assert first.episode_start == night
    assert first.details["added_kw"] == pytest.approx(2.5, abs=0.8)
    assert first.details["needed_share"] == pytest.approx(RULES.sustained_min_share)
    assert first.details["expected_kw"] == pytest.approx(10.0, rel=0.5)  # the envelope at this hour
    assert first.details["samples"][-1] == [first.ts, pytest.approx(first.details["kw"])]


def test_one_odd_reading_is_not_a_sustained_rise():
    state, t, rng = warm()
    feed(VILLAGE, state, t, 23 * 4, lambda ts: village_kw(ts, rng))
    night = t + 23 * 4 * STEP
    found = feed(VILLAGE, state, night, 8, lambda ts: village_kw(ts, rng) + (6.0 if ts == night else 0.0))
    assert found == []


def test_a_load_that_runs_on_past_its_hours_is_not_a_new_rise():
    """A connected load makes the draw jump; a plant that keeps running into the night (the
    envelope drops at 22:00, the draw does not) shows no jump and raises nothing."""
    state, t, rng = warm()
    feed(VILLAGE, state, t, 21 * 4, lambda ts: village_kw(ts, rng))
    evening = t + 21 * 4 * STEP  # Tuesday 21:00: the day's 25 kW runs on until 01:00
    assert feed(VILLAGE, state, evening, 16, lambda ts: 25.0 * rng.uniform(0.95, 1.05)) == []
    # The same load connected onto the quiet night is a rise, and found.
    state, t, rng = warm()
    feed(VILLAGE, state, t, 23 * 4, lambda ts: village_kw(ts, rng))
    found = feed(VILLAGE, state, t + 23 * 4 * STEP, 8, lambda ts: 25.0 * rng.uniform(0.95, 1.05))
    assert {"sustained_excess", "baseline_deviation"} <= {f.kind for f in found}


def test_a_slow_rise_over_the_night_is_not_a_theft():
    """A season's slow rise (heating coming on a little earlier each night) shows no jump:
    +2 % of the night load an hour, +16 % by the end of 8 hours, raises nothing (a rise is
    a jump when it is faster than about a sixth of the meter's needed share per interval)."""
    for seed in (1, 2, 3):
        state, t, rng = warm(seed=seed)
        feed(VILLAGE, state, t, 22 * 4, lambda ts: village_kw(ts, rng))
        night = t + 22 * 4 * STEP
        rising = feed(VILLAGE, state, night, 32,
                      lambda ts: 10.0 * rng.uniform(0.98, 1.02) + 0.05 * (ts - night) / STEP)
        assert rising == [], seed


def test_without_the_jump_rule_the_same_loads_would_alarm():
    """The two series above are not quiet by luck: with onset_share 0 they raise findings."""
    rules = PowerRules(onset_share=0.0)
    state, t, rng = warm(rules=rules)
    feed(VILLAGE, state, t, 21 * 4, lambda ts: village_kw(ts, rng), rules=rules)
    assert feed(VILLAGE, state, t + 21 * 4 * STEP, 16, lambda ts: 25.0 * rng.uniform(0.95, 1.05), rules=rules)
    state, t, rng = warm(rules=rules)
    feed(VILLAGE, state, t, 22 * 4, lambda ts: village_kw(ts, rng), rules=rules)
    night = t + 22 * 4 * STEP
    assert feed(VILLAGE, state, night, 32, lambda ts: 10.0 * rng.uniform(0.98, 1.02) + 0.05 * (ts - night) / STEP,
                rules=rules)


def test_clean_two_months_are_quiet():
    rng = random.Random(11)
    state = new_state()
    assert feed(VILLAGE, state, START, DAY * 60, lambda ts: village_kw(ts, rng)) == []


def test_night_industrial_load_judges_flatness_on_the_added_load():
    """A 500 kW base, +-3 %: a flat +100 kW on top for 2 h is industrial; a swinging 20-180 kW
    on top is a sustained excess but not flat, though the total is flat enough (CV ~0.1)."""
    big = MeterSpec("M-BIG", "S01", "workshop", False, 1000)
    for added, industrial in ((lambda r: 100.0, True), (lambda r: r.uniform(20.0, 180.0), False)):
        rng = random.Random(4)
        state = new_state()
        feed(big, state, START, DAY * WARM_DAYS + 23 * 4, lambda ts: 500.0 * rng.uniform(0.97, 1.03))
        night = START + (DAY * WARM_DAYS + 23 * 4) * STEP
        found = feed(big, state, night, 8, lambda ts: 500.0 * rng.uniform(0.97, 1.03) + added(rng))
        kinds = [f.kind for f in found]
        assert "sustained_excess" in kinds and ("night_industrial_load" in kinds) is industrial, kinds
        if industrial:
            flat = next(f for f in found if f.kind == "night_industrial_load")
            assert flat.details["cv"] <= RULES.night_load_max_cv and flat.details["added_kw"] == pytest.approx(100, 5)


# --------------------------------------------------------------------------- a baseline a thief cannot teach


def test_thief_returning_every_night_is_found_every_night():
    state, t, rng = warm()
    nights_found = []
    for night in range(10):
        day = t + night * DAY * STEP
        feed(VILLAGE, state, day, 23 * 4, lambda ts: village_kw(ts, rng))
        found = feed(VILLAGE, state, day + 23 * 4 * STEP, 8, lambda ts: village_kw(ts, rng) + 2.5)  # 23:00-01:00
        found += feed(VILLAGE, state, day + 25 * 4 * STEP, 4, lambda ts: village_kw(ts, rng))
        nights_found.append(any(f.kind == "sustained_excess" for f in found))
    assert all(nights_found)
    # ...none of the theft readings is in the short baseline of 23:00 on Tuesday-Thursday,
    assert max(state["buckets"].get("h23-mid")) < 11.0
    # ...and the thief's nights did not raise the meter's threshold.
    assert detectable(state, RULES)["sustained"] == pytest.approx(RULES.sustained_min_share)


def test_readings_of_an_episode_and_its_guard_band_are_not_learnt():
    state, t, rng = warm()
    feed(VILLAGE, state, t, 23 * 4, lambda ts: village_kw(ts, rng))
    before = list(state["buckets"].get("h0-mid"))
    night = t + 23 * 4 * STEP
    feed(VILLAGE, state, night, 8, lambda ts: 13.0)  # 23:00-01:00, flagged
    feed(VILLAGE, state, night + 8 * STEP, 4, lambda ts: 10.0)  # 01:00-02:00: the guard band
    feed(VILLAGE, state, night + 12 * STEP, 40, lambda ts: 10.0)  # later: learnt again
    assert 13.0 not in state["buckets"].get("h0-mid")  # the episode
    assert state["buckets"].get("h0-mid")[-4:] == before[-4:]  # nothing new at 00:00
    assert state["buckets"].get("h1-mid")[-1] != 10.0  # the guard band
    assert state["buckets"].get("h4-mid")[-4:] == [10.0] * 4  # after it


def test_long_reference_is_kept_per_hour_and_day_type_and_bounded():
    state, t, rng = warm(days=60)
    days = state["buckets"].get("L3-mid")
    assert 20 <= len(days) <= RULES.reference_days and all(9.0 < v < 11.0 for v in days)
    assert all(len(state["buckets"].get(k)) <= RULES.baseline_samples for k in BUCKETS if k.startswith("h")
               and state["buckets"].get(k))
    assert all(len(v) <= RULES.calibration_nights for v in state["buckets"].get("cal").values())


# --------------------------------------------------------------------------- returning rise


def restless(days: int, seed: int, added=lambda ts: 0.0, rules=lambda ts: RULES, each_day=lambda day, state: None,
             noise: float = 0.02, missing=lambda ts: False):
    """A meter whose nights differ by their whole level (10 kW x 0.85-1.15, fixed for the
    night, +-2 % per reading; 25 kW by day): one night's +15 % is inside what its nights do.
    ``rules`` gives the thresholds at a time, ``each_day`` is called before each day with its
    number and the state; readings at ``missing`` times are not sent. Returns the findings of each day (from 12:00 to the next
    12:00: its night) and the state."""
    rng = random.Random(seed)
    state, per_night = new_state(), []
    for d in range(days):
        each_day(d, state)
        level = 10.0 * rng.uniform(0.85, 1.15)
        start = START + d * DAY * STEP + 12 * 4 * STEP
        found = []
        for i in range(DAY):
            ts = start + i * STEP
            kw = (level if CLOCK.hour(ts) < 6 or CLOCK.hour(ts) >= 22 else 25.0) * rng.uniform(1 - noise, 1 + noise)
            if not missing(ts):
                found += observe(VILLAGE, rules(ts), CLOCK, state, ts, power_kw=kw + added(ts)) or []
        per_night.append(found)
    return per_night, state


def nightly(hour: float, kw: float, first_day: int, nights: int):
    """+kw for 2 h from ``hour`` on ``nights`` nights, the first on the evening of ``first_day``."""
    def added(ts: float) -> float:
        since = round((ts - START) / 60 - (first_day * 24 + hour) * 60)  # minutes
        return kw if 0 <= since < nights * 1440 and since % 1440 < 120 else 0.0
    return added


def kinds_by_night(per_night, first: int, count: int) -> list[set[str]]:
    return [{f.kind for f in found} for found in per_night[first:first + count]]


def test_a_thief_coming_back_at_the_same_time_is_found_from_the_third_night():
    clean, _ = restless(56, seed=4)
    assert [f.kind for night in clean for f in night] == []  # 8 weeks of restless nights: quiet
    per_night, state = restless(56, seed=4, added=nightly(23, 1.5, first_day=45, nights=10))
    kinds = kinds_by_night(per_night, 45, 10)
    found = [("returning_rise" in k) for k in kinds]
    assert found[:2] == [False, False], kinds  # two nights are no pattern yet...
    assert sum(found[2:]) >= 6, kinds  # ...from the third, the same jump at 23:00 is
    assert sum("sustained_excess" in k for k in kinds) <= 2, kinds  # one night's +15 % hides in this meter's nights
    first = next(f for night in per_night[45:] for f in night if f.kind == "returning_rise")
    assert first.strength == 0.5 and "23:00" in first.seen and first.details["jump_kw"] >= VILLAGE.rated_kw * 0.02
    # At each time of night this meter's jumps are steady: its nights do not raise the bar.
    assert detectable(state, RULES)["returning"] == RULES.returning_min_score


def test_a_machine_that_starts_at_the_same_time_every_night_is_normal_and_hides_no_thief():
    """A +50 % machine at 22:30 every night is no news (the jump usual at 22:30 is taken off),
    so it does not raise the bar for a +15 % thief coming back at 02:00."""
    machine = nightly(22.5, 5.0, first_day=0, nights=56)
    per_night, _ = restless(56, seed=4, added=machine)
    assert [f.kind for night in per_night[30:] for f in night] == []
    thief = nightly(26, 1.5, first_day=45, nights=10)
    per_night, _ = restless(56, seed=4, added=lambda ts: machine(ts) + thief(ts))
    assert sum("returning_rise" in k for k in kinds_by_night(per_night, 45, 10)[2:]) >= 6


def test_a_new_nightly_routine_alarms_until_it_is_learnt_and_leaves_the_rule_its_sight():
    """A +15 % load at 23:00 every night from night 45 alarms from its 3rd night until the
    meter, changed (findings on more than 10 of 14 days), has learnt it; a thief at 02:00
    a month later is still found from his 3rd night."""
    routine, thief = nightly(23, 1.5, first_day=45, nights=65), nightly(26, 1.5, first_day=95, nights=10)
    per_night, _ = restless(110, seed=4, added=lambda ts: routine(ts) + thief(ts))
    alarms = ["returning_rise" in k for k in kinds_by_night(per_night, 45, 65)]
    assert alarms[:2] == [False, False] and all(alarms[2:12])
    assert not any(alarms[35:50])  # learnt: quiet for the second half of its second month
    assert sum("returning_rise" in k for k in kinds_by_night(per_night, 95, 10)[2:]) >= 6


def test_a_machine_that_runs_a_quarter_hour_earlier_from_one_night_on_is_no_thief():
    """Its jumps now come where a jump was usual a quarter-hour later."""
    before, after = nightly(22.5, 5.0, first_day=0, nights=40), nightly(22.25, 5.0, first_day=40, nights=16)
    per_night, _ = restless(56, seed=4, added=lambda ts: before(ts) + after(ts))
    assert [f.kind for night in per_night[30:] for f in night] == []


@pytest.mark.parametrize("hour", [20.5, 4.5])
def test_returning_rise_judges_only_the_dead_of_night(hour):
    """Start-ups and shut-downs at the night's edges move with the seasons and the shifts."""
    per_night, _ = restless(56, seed=4, added=nightly(hour, 1.5, first_day=45, nights=10))
    assert not any("returning_rise" in k for k in kinds_by_night(per_night, 45, 10))


@pytest.mark.parametrize("hours, expected", [
    ((22, 4), {(21, 30): None, (21, 45): ("87", False), (22, 0): ("88", True), (3, 45): ("15", True),
               (4, 0): ("16", False), (4, 15): None}),
    ((1, 3), {(0, 30): None, (0, 45): ("3", False), (1, 0): ("4", True), (2, 45): ("11", True),
              (3, 0): ("12", False), (3, 15): None}),
])
def test_returning_rise_keeps_its_hours_and_a_quarter_hour_either_side_and_judges_only_the_hours(hours, expected):
    rules = PowerRules(returning_hours=hours)
    for (hour, minute), where in expected.items():
        assert _returning_quarter(local_ts(2026, 10, 1, hour, minute), CLOCK, rules) == where, (hour, minute)


def test_a_thief_who_misses_a_night_starts_a_new_run_of_nights():
    thief = nightly(23, 1.5, first_day=45, nights=10)
    gap = lambda ts: 48 < (ts - START) / 86400 < 49.5  # the meter sends nothing on the 4th night
    per_night, _ = restless(56, seed=4, added=thief, missing=gap)
    found = ["returning_rise" in k for k in kinds_by_night(per_night, 45, 10)]
    assert found[2] and not found[3]  # the 3rd night; the 4th sent nothing
    assert found[4:6] == [False, False]  # the 5th and 6th follow a gap: two nights in a row, not three
    assert sum(found[6:]) >= 3


def test_returning_rise_fires_only_above_the_meters_own_calibration():
    """The same thief, on a meter whose clean nights scored up to 50 spreads: not found."""
    thief = nightly(23, 1.5, first_day=45, nights=10)

    def noisy_past(day, state):
        if day == 40:
            state["buckets"]["cal"] = {**state["buckets"]["cal"], "returning": [50.0] * 60}
    per_night, state = restless(56, seed=4, added=thief, each_day=noisy_past)
    assert not any("returning_rise" in k for k in kinds_by_night(per_night, 45, 10))
    assert detectable(state, RULES)["returning"] >= 50.0


def test_a_rise_below_the_share_is_not_a_returning_thief_however_steady_the_meter():
    """On a steady meter (+-0.5 %) a +0.8 kW jump is many spreads, but under 10 % of the
    envelope; +1.5 kW is over it."""
    for kw, expected in ((0.8, False), (1.5, True)):
        per_night, _ = restless(56, seed=4, added=nightly(23, kw, first_day=45, nights=10), noise=0.005)
        assert any("returning_rise" in k for k in kinds_by_night(per_night, 45, 10)) is expected, kw


def test_a_returning_rise_at_the_end_of_the_hours_ends_with_them_and_the_day_is_learnt():
    """A thief at 03:15: found at 03:45, the last judged quarter-hour; the episode ends when
    judging ends, so the quarantine closes and the next day teaches the baseline."""
    checked = []

    def after_the_night(day, state):
        if day in (50, 51):
            checked.append(("returning_rise" in state["runs"], state["quarantine"][-1][1] is not None,
                            list(state["buckets"]["h9-mid"])))
    per_night, _ = restless(56, seed=4, added=nightly(27.25, 2.0, first_day=45, nights=10), each_day=after_the_night)
    assert sum("returning_rise" in k for k in kinds_by_night(per_night, 45, 10)[2:]) >= 6
    (running, closed_50, day_50), (_, closed_51, day_51) = checked
    assert not running and closed_50 and closed_51
    assert day_51 != day_50  # 09:00 of day 51, a Wednesday, was learnt


@pytest.mark.parametrize("hour", [20.5, 23.5])
def test_a_night_with_a_finding_teaches_returning_rise_nothing(hour):
    """A spike flags the night: before returning_rise's hours begin, or within them."""
    seen = {}

    def look(day, state):
        seen[day] = {q: list(v) for q, v in (state["buckets"].get("jumps") or {}).items()}
    at = 47 + hour / 24
    spike = lambda ts: 60.0 if at - 0.001 < (ts - START) / 86400 < at + 0.005 else 0.0  # one reading on day 47
    per_night, _ = restless(50, seed=4, added=spike, each_day=look)
    assert "baseline_deviation" in {f.kind for f in per_night[47]}
    assert seen[49] == seen[48] and seen[48] != seen[47]  # night 47 taught nothing; night 46 did


def test_returning_rise_takes_new_hours_in_the_middle_of_a_night():
    """thresholds.yaml is reloaded while running: hours to 05:00 from 01:00 on night 50."""
    wide = PowerRules(returning_hours=(22, 5))
    switch = lambda ts: wide if ts >= START + (50 * 24 + 25) * 3600 else RULES
    per_night, state = restless(53, seed=4, rules=switch)
    assert [f.kind for night in per_night[30:] for f in night] == []
    assert "19" in state["buckets"]["jumps"]  # 04:45 is kept and learnt now


def test_a_state_kept_before_returning_rise_existed_is_judged_without_a_crash():
    """Recovered from a changelog written by an older version: no "jumps", recent readings
    without their draw, tonight's limits without the returning test."""
    state, t, rng = warm()
    feed(VILLAGE, state, t, 23 * 4, lambda ts: village_kw(ts, rng))
    del state["jumps"]
    state["recent"] = [r[:4] for r in state["recent"]]
    state["tonight"][3].pop("returning", None)
    found = feed(VILLAGE, state, t + 23 * 4 * STEP, 12, lambda ts: village_kw(ts, rng))
    assert found == [] and state["jumps"]


def test_returning_rise_can_be_turned_off_and_its_settings_are_checked():
    thief = nightly(23, 1.5, first_day=45, nights=10)
    per_night, _ = restless(56, seed=4, added=thief, rules=lambda ts: PowerRules(returning_nights=0))
    assert not any("returning_rise" in k for k in kinds_by_night(per_night, 45, 10))
    with pytest.raises(ValueError, match="returning_nights"):
        PowerRules(returning_nights=1)
    with pytest.raises(ValueError, match="returning_hours"):
        PowerRules(returning_hours=(22, 24))


# --------------------------------------------------------------------------- closure calendar


def test_closed_days_neither_alarm_nor_teach():
    state, t, rng = warm()  # up to Tuesday 2026-10-13 00:00
    spec = MeterSpec("M-0033", "S01", "village", False, 40, closed_dates=("2026-10-14",))  # the Wednesday
    feed(spec, state, t, DAY, lambda ts: village_kw(ts, rng))
    t += DAY * STEP
    snapshot = json.loads(json.dumps(dict(state["buckets"])))
    # The closed day: 3x the load in its first half, then nothing; and the nights around it.
    found = feed(spec, state, t, DAY, lambda ts: 75.0 if CLOCK.hour(ts) < 12 else 0.6)
    assert found == []
    assert all(state["buckets"].get(k) == snapshot.get(k) for k in ("h3-mid", "h15-mid", "L3-mid", "cal"))
    assert closed(local_ts(2026, 10, 13, 21), spec, CLOCK)  # the evening before
    assert closed(local_ts(2026, 10, 15, 5), spec, CLOCK)  # the morning after
    assert not closed(local_ts(2026, 10, 15, 7), spec, CLOCK)
    assert not closed(local_ts(2026, 10, 14, 12), VILLAGE, CLOCK)  # another meter's calendar


# --------------------------------------------------------------------------- partial bypass


def test_partial_bypass_live_meter_far_below_for_hours_on_a_working_day():
    state, t, rng = warm()
    feed(VILLAGE, state, t, 8 * 4, lambda ts: village_kw(ts, rng))
    morning = t + 8 * 4 * STEP  # Tuesday 08:00: 25 kW usual
    found = feed(VILLAGE, state, morning, 24, lambda ts: village_kw(ts, rng) * 0.3)
    assert [f.kind for f in found] == ["partial_bypass"]
    f = found[0]
    assert f.strength < 0.35 and f.episode_start == morning and (f.ts - morning) / STEP + 1 == RULES.drop_intervals
    # and once: the drop going on through the night is the same episode
    assert feed(VILLAGE, state, morning + 24 * STEP, DAY, lambda ts: village_kw(ts, rng) * 0.3) == []


def test_no_partial_bypass_on_weekends_or_closed_days():
    state, t, rng = warm()  # Tuesday midnight
    spec = MeterSpec("M-0033", "S01", "village", False, 40, closed_dates=("2026-10-13",))
    assert feed(spec, state, t, DAY, lambda ts: village_kw(ts, rng) * 0.3) == []
    feed(spec, state, t + DAY * STEP, 3 * DAY, lambda ts: village_kw(ts, rng))
    saturday = t + 4 * DAY * STEP
    assert feed(spec, state, saturday, DAY, lambda ts: village_kw(ts, rng) * 0.3) == []


# --------------------------------------------------------------------------- state


class OnlyGetAndSet:
    """The agent's bucket store: get() and item assignment, nothing else."""

    def __init__(self):
        self._d = {}
        self.writes = 0

    def get(self, key, default=None):
        return self._d.get(key, default)

    def __setitem__(self, key, value):
        assert key in BUCKETS, key
        json.dumps(value)
        self.writes += 1
        self._d[key] = value


def test_state_is_small_plain_json_and_buckets_need_only_get_and_set():
    rng = random.Random(9)
    state = new_state()
    state["buckets"] = OnlyGetAndSet()
    feed(VILLAGE, state, START, DAY * 40, lambda ts: village_kw(ts, rng))
    feed(VILLAGE, state, START + DAY * 40 * STEP + 92 * STEP, 8, lambda ts: 15.0)  # an episode
    rest = {k: v for k, v in state.items() if k != "buckets"}
    assert json.loads(json.dumps(rest)) == rest
    assert len(json.dumps(rest)) < 2000
    assert len(state["pending"]) <= RULES.learn_delay_intervals and len(state["quarantine"]) <= 4
    assert len(state["recent"]) <= RULES.night_load_intervals + RULES.onset_intervals
    # about one short-bucket write per reading, one long-bucket write per hour, one calibration
    # and one jumps write a night
    assert state["buckets"].writes <= DAY * 40 * 1.3
    assert all(len(json.dumps(v)) < 400 for k, v in state["buckets"]._d.items() if k not in ("cal", "jumps"))
    assert len(json.dumps(state["buckets"].get("cal"))) < 1600
    # 26 quarter-hours x 28 nights of jumps as shares of rated_kw ("-0.0124, ")
    assert len(json.dumps(state["buckets"].get("jumps"))) < 26 * 28 * 9 + 100


def test_rules_refuse_inconsistent_thresholds():
    with pytest.raises(ValueError):
        PowerRules(calibration_min_nights=70, calibration_nights=60)
    with pytest.raises(ValueError):
        PowerRules(sustained_intervals=10, night_load_intervals=8)
    with pytest.raises(ValueError):
        PowerRules(reference_quantile=0.3)


def test_clean_demo_county_month_is_quiet():
    """Six weeks of the demo county's clean series (every meter, with its calendar): nothing."""
    from streams.config import load_config
    from streams.ops.demo import meter_power_kw
    from tests.helpers import REPO

    cfg = load_config(REPO / "configs")
    specs = cfg.meters.specs()
    rng = random.Random(11)
    start = local_ts(2026, 6, 1, 0)
    findings = []
    for m in cfg.meters.meters:
        state = new_state()
        findings += feed(specs[m.id], state, start, 96 * 42, lambda ts: meter_power_kw(m, ts, CLOCK, rng))
    assert findings == [], [(f.kind, f.meter_id, f.seen) for f in findings[:5]]
