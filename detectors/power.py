"""Unexplained power draw: pure rules over one meter's interval readings.

Every rule works on plain data: a ``MeterSpec`` (what the ledger says the meter is), a
``PowerRules`` (thresholds from configs/thresholds.yaml) and a per-meter ``state`` dict
that is JSON-serializable, so a Faust table can hold it and recover it from a changelog.

    state = new_state()
    findings = observe(spec, rules, state, ts, power_kw, energy_kwh, register_kwh)

Each ``PowerFinding`` says what was expected, what was seen and why it is unexplained, in
words a patrol member can read. The rules:

- ``reconnection``: a line the utility cut (expected zero) draws above the noise floor;
- ``baseline_deviation``: far above what this meter draws at this hour (median/MAD of
  the same hour-of-day and day type, after a warm-up), and not explained by its plan;
- ``irrigation_off_plan``: an irrigation pump running outside its season or hours;
- ``irrigation_overload``: a sustained night load far above the declared pump rating;
- ``night_industrial_load``: a flat, high load above the meter's own baseline, for hours,
  at night, where the place should be quiet;
- ``register_jump_after_zeros``: a live meter reads zero for a while, then its register
  shows energy it never reported (bypass, then reconnect);
- ``meter_silent``: a live meter stops reporting (``check_silence``, run by a timer).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ConfigDict

from detectors.timeofday import LocalClock

State = dict[str, Any]


@dataclass(frozen=True)
class PowerRules:
    """Thresholds for the power rules (configs/thresholds.yaml, section ``power``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    noise_floor_kw: float = 0.5  # a cut line reading above this is drawing power
    reconnect_intervals: int = 1  # consecutive intervals above the floor before a signal
    baseline_samples: int = 16  # readings kept per hour-of-day x day-type bucket (4 days of one hour)
    baseline_min_samples: int = 8  # warm-up: fewer than this in a bucket, no deviation score
    deviation_score: float = 6.0  # robust z-score (MAD) that counts as unexplained
    # Loads swing by this fraction of their median in normal use; a few samples can show
    # a deceptively small MAD, so the spread is never taken below it.
    deviation_rel_spread: float = 0.2
    deviation_min_excess_kw: float = 5.0  # and at least this far above the median
    irrigation_idle_kw: float = 1.0  # a pump "off" draws less than this
    irrigation_off_plan_intervals: int = 2
    irrigation_overload_factor: float = 1.5  # night load above rating x this
    irrigation_overload_intervals: int = 2
    night_load_excess_kw: float = 10.0  # above the meter's own baseline
    night_load_intervals: int = 8  # 2 hours of 15-minute intervals
    night_load_max_cv: float = 0.25  # flat: pumps and crushers, not households
    zero_run_intervals: int = 4  # zeros on a live meter before a jump counts
    silence_intervals: int = 4  # no reading for this many intervals: silent
    repeat_every_intervals: int = 4  # while a finding persists, repeat it this often
    late_limit_s: float = 86400.0  # readings older than the newest by more than this are ignored

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"{name} must not be negative (got {value})")
        if self.baseline_min_samples > self.baseline_samples:
            raise ValueError("baseline_min_samples cannot exceed baseline_samples")


@dataclass(frozen=True)
class MeterSpec:
    meter_id: str
    site_id: str
    kind: str  # mine_supply, irrigation, village, workshop
    expected_zero: bool
    rated_kw: float
    interval_s: int = 900
    irrigation_months: tuple[int, ...] = ()
    irrigation_hours: tuple[int, int] = (0, 0)
    pump_kw: float = 0.0


@dataclass
class PowerFinding:
    kind: str
    meter_id: str
    site_id: str
    ts: float
    strength: float  # 0..1
    expected: str
    seen: str
    why: str
    episode_start: float  # when the pattern began: with kind, a stable identity
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.why} Expected {self.expected}; seen {self.seen}."


# --------------------------------------------------------------------------- state


def new_state() -> State:
    return {
        "last_ts": None,  # newest interval seen
        # Intervals seen, for ignoring re-sent readings: bit k is the interval k steps
        # before newest_slot (an int of a day's bits, not a list of a day's timestamps).
        "newest_slot": None,
        "seen": 0,
        "last_register": None,
        # "h{hour}-{wd|sat|sun}" -> recent kW values. Any mapping with get() and item
        # assignment will do: the power agent keeps each bucket under its own table key,
        # since a reading changes one bucket and the rest of the profile stays as it was.
        "buckets": {},
        "runs": {},  # rule -> {"start": ts, "count": n, "last": ts, "values": [...]}
        "live": False,  # has drawn power before (for silence and tamper rules)
        "silent_since": None,
        "resets": 0,
    }


DAY_TYPES = ("wd", "wd", "wd", "wd", "wd", "sat", "sun")  # by tm_wday
BUCKETS = tuple(f"h{hour}-{day}" for hour in range(24) for day in dict.fromkeys(DAY_TYPES))


def _bucket(ts: float, clock: LocalClock) -> str:
    """Hour of day x day type (working day, Saturday, Sunday), as utilities profile load."""
    t = clock.local(ts)
    return f"h{t.tm_hour}-{DAY_TYPES[t.tm_wday]}"


def _first_time(state: State, ts: float, interval_s: int, keep: int) -> bool:
    """Mark the interval of ``ts`` as seen; False if it was seen before (a re-send), or is
    older than the intervals remembered."""
    slot = round(ts / interval_s)
    newest = state["newest_slot"]
    if newest is None or slot > newest:
        shift = keep if newest is None else slot - newest
        state["seen"] = ((state["seen"] << shift) | 1) & ((1 << keep) - 1) if shift < keep else 1
        state["newest_slot"] = slot
        return True
    age = newest - slot
    if age >= keep or state["seen"] >> age & 1:
        return False
    state["seen"] |= 1 << age
    return True


def seen_intervals(state: State) -> int:
    """How many of the remembered intervals had a reading."""
    return bin(state["seen"]).count("1")


def baseline(state: State, ts: float, rules: PowerRules, clock: LocalClock) -> tuple[float, float] | None:
    """(median, robust spread) of this meter at this hour and day type, once warmed up.

    A weekend bucket fills slowly (one day a week); until it is warm, the working-day
    bucket of the same hour stands in for it."""
    key = _bucket(ts, clock)
    values = state["buckets"].get(key, [])
    if len(values) < rules.baseline_min_samples:
        values = state["buckets"].get(key.split("-")[0] + "-wd", [])
    if len(values) < rules.baseline_min_samples:
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return median, 1.4826 * mad


def _run(state: State, rule: str, active: bool, ts: float, interval_s: int, value: float) -> dict | None:
    """Track consecutive intervals where a rule's condition holds; a gap breaks the run."""
    runs = state["runs"]
    current = runs.get(rule)
    if not active:
        runs.pop(rule, None)
        return None
    if current is None or ts - current["last"] > interval_s * 1.5:
        current = {"start": ts, "count": 0, "last": ts, "values": []}
    current["count"] += 1
    current["last"] = ts
    current["values"] = (current["values"] + [value])[-64:]
    runs[rule] = current
    return current


def _due(run: dict, needed: int, rules: PowerRules) -> bool:
    """First time the run reaches its length, then every repeat_every_intervals after."""
    extra = run["count"] - needed
    return extra >= 0 and extra % max(1, rules.repeat_every_intervals) == 0


def _kw(power_kw: float | None, energy_kwh: float | None, interval_s: int) -> float:
    if power_kw is not None:
        return power_kw
    return (energy_kwh or 0.0) * 3600 / interval_s


# --------------------------------------------------------------------------- rules


def observe(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float,
            power_kw: float | None = None, energy_kwh: float | None = None,
            register_kwh: float | None = None) -> list[PowerFinding] | None:
    """Take one reading into the state; return what it makes unexplained (often nothing).

    Returns None when the reading was not used: the same interval again (a re-sent batch:
    one reading per meter per interval counts), or later than ``late_limit_s`` behind the
    newest reading. Late readings within the limit teach the baseline but do not take part
    in the rules that follow a sequence.
    """
    last = state["last_ts"]
    if last is not None and ts < last - rules.late_limit_s:
        return None
    # Remembering the intervals of the late limit (a day) catches every re-send within it.
    if not _first_time(state, ts, spec.interval_s, max(16, int(rules.late_limit_s // spec.interval_s) + 2)):
        return None
    kw = _kw(power_kw, energy_kwh, spec.interval_s)
    findings: list[PowerFinding] = []
    expected = baseline(state, ts, rules, clock)

    if last is None or ts > last:
        findings += _register_rules(spec, rules, state, ts, kw, energy_kwh, register_kwh, expected)
        findings += _sequence_rules(spec, rules, clock, state, ts, kw, expected)
        state["last_ts"] = ts
        state["silent_since"] = None
    if kw > rules.noise_floor_kw:
        state["live"] = True
    # Learn the baseline last, so a reading is judged against the past, not itself.
    key = _bucket(ts, clock)
    state["buckets"][key] = (state["buckets"].get(key, []) + [round(kw, 3)])[-rules.baseline_samples:]
    return findings


def _sequence_rules(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float, kw: float,
                    expected: tuple[float, float] | None) -> list[PowerFinding]:
    out: list[PowerFinding] = []
    local = clock.local(ts)
    hour, month = local.tm_hour, local.tm_mon
    night = clock.is_night(ts)
    interval = spec.interval_s

    def finding(kind: str, run: dict, strength: float, expected_words: str, seen: str, why: str, **details):
        out.append(PowerFinding(kind, spec.meter_id, spec.site_id, ts, round(min(1.0, max(0.0, strength)), 3),
                           expected_words, seen, why, run["start"],
                           {"kw": kw, "intervals": run["count"], **details}))

    # A cut line drawing power.
    if spec.expected_zero:
        run = _run(state, "reconnection", kw > rules.noise_floor_kw, ts, interval, kw)
        if run and _due(run, rules.reconnect_intervals, rules):
            finding("reconnection", run, 0.7 + 0.3 * min(1.0, kw / 20.0), "0 kW (the utility cut this line)",
                    f"{kw:.1f} kW for {run['count']} interval(s)",
                    f"Meter {spec.meter_id} feeds a closed mine whose supply was cut, yet it draws power.")
        return out  # every other rule is about meters that are allowed to draw

    explained_by_plan = False
    if spec.kind == "irrigation":
        start_h, end_h = spec.irrigation_hours
        in_season = month in spec.irrigation_months
        in_hours = start_h <= hour < end_h
        explained_by_plan = in_season and in_hours and kw <= spec.pump_kw * 1.2
        run = _run(state, "irrigation_off_plan", kw > rules.irrigation_idle_kw and not (in_season and in_hours),
                   ts, interval, kw)
        if run and _due(run, rules.irrigation_off_plan_intervals, rules):
            when = "outside the irrigation season" if not in_season else f"outside irrigation hours {start_h}-{end_h} h"
            finding("irrigation_off_plan", run, 0.5 + 0.3 * min(1.0, kw / max(spec.pump_kw, 1.0)),
                    f"under {rules.irrigation_idle_kw:g} kW {when}", f"{kw:.1f} kW for {run['count']} interval(s)",
                    f"Irrigation meter {spec.meter_id} draws power {when}.")
        limit = spec.pump_kw * rules.irrigation_overload_factor
        run = _run(state, "irrigation_overload", night and kw > limit, ts, interval, kw)
        if run and _due(run, rules.irrigation_overload_intervals, rules):
            finding("irrigation_overload", run, 0.6 + 0.4 * min(1.0, kw / (limit * 2)),
                    f"at most {spec.pump_kw:g} kW (the declared pump)", f"{kw:.1f} kW at night",
                    f"Irrigation meter {spec.meter_id} carries far more than its pump at night.")

    if expected is not None:
        median, spread = expected
        excess = kw - median
        score = excess / max(spread, rules.deviation_rel_spread * median, 0.02 * spec.rated_kw, 0.5)
        deviating = score >= rules.deviation_score and excess >= rules.deviation_min_excess_kw and not explained_by_plan
        run = _run(state, "baseline_deviation", deviating, ts, interval, kw)
        if run and _due(run, 1, rules):
            finding("baseline_deviation", run, 0.4 + 0.5 * min(1.0, score / (rules.deviation_score * 3)),
                    f"about {median:.1f} kW at this hour", f"{kw:.1f} kW (score {score:.0f})",
                    f"Meter {spec.meter_id} draws far more than it ever does at this hour.", score=round(score, 1))

        high_flat = night and excess >= rules.night_load_excess_kw
        run = _run(state, "night_industrial_load", high_flat, ts, interval, kw)
        if run and run["count"] >= rules.night_load_intervals:
            values = run["values"][-rules.night_load_intervals:]
            cv = statistics.pstdev(values) / max(statistics.mean(values), 1e-6)
            if cv <= rules.night_load_max_cv and _due(run, rules.night_load_intervals, rules):
                hours = run["count"] * interval / 3600
                finding("night_industrial_load", run, 0.6 + 0.3 * min(1.0, hours / 6),
                        f"about {median:.1f} kW at night", f"a steady {statistics.mean(values):.1f} kW for {hours:.1f} h",
                        f"A steady industrial-like load runs at night on meter {spec.meter_id}, where it should be quiet.",
                        cv=round(cv, 3))
    return out


def _register_rules(spec: MeterSpec, rules: PowerRules, state: State, ts: float, kw: float,
                    energy_kwh: float | None, register_kwh: float | None,
                    expected: tuple[float, float] | None) -> list[PowerFinding]:
    """Zero then jump: energy shows up on the register that the readings never reported."""
    out: list[PowerFinding] = []
    should_draw = expected is not None and expected[0] > rules.noise_floor_kw * 2
    reported = energy_kwh if energy_kwh is not None else kw * spec.interval_s / 3600
    was_zero = state["runs"].get("zeros_while_live")
    is_zero = kw <= rules.noise_floor_kw and state["live"] and (should_draw or was_zero is not None)
    zero_run = _run(state, "zeros_while_live", is_zero, ts, spec.interval_s, kw)
    last_register = state["last_register"]
    if zero_run is not None and zero_run["count"] == 1:
        # Where the register stood when zeros began; unknown after a gap, whose energy
        # the register counted but no reading reported.
        contiguous = state["last_ts"] is not None and ts - state["last_ts"] <= spec.interval_s * 1.5
        zero_run["register_before"] = last_register if contiguous else None
        zero_run["reported_kwh"] = 0.0
    if zero_run is not None:
        zero_run["reported_kwh"] += reported
    if register_kwh is not None:
        if last_register is not None and register_kwh < last_register:
            state["resets"] += 1  # a register reset or rollover: re-anchor, never a negative delta
        elif zero_run is None and was_zero is not None and was_zero["count"] >= rules.zero_run_intervals \
                and was_zero.get("register_before") is not None \
                and ts - was_zero["last"] <= spec.interval_s * 1.5:  # after a gap, unreported energy is unknown
            counted = register_kwh - was_zero["register_before"]
            unreported = counted - was_zero["reported_kwh"] - reported
            if unreported > max(1.0, 0.1 * spec.rated_kw * spec.interval_s / 3600):
                out.append(PowerFinding(
                    "register_jump_after_zeros", spec.meter_id, spec.site_id, ts, 0.7,
                    "the register to move only by the energy reported",
                    f"{unreported:.1f} kWh more after {was_zero['count']} zero readings",
                    f"Meter {spec.meter_id} read zero for a while, yet its register counted energy: "
                    "a bypass, then a reconnection.",
                    was_zero["start"], {"unreported_kwh": round(unreported, 2)}))
        state["last_register"] = register_kwh
    return out


def feed_time(states: list[State]) -> float | None:
    """The source time a feed of meters has reached: the median of its live meters' newest
    readings. One meter's alarm reading, or one meter's upload arriving before the others',
    does not move it; most of the feed moving on does. None without live meters."""
    newest = [s["last_ts"] for s in states if s.get("live") and s.get("last_ts") is not None]
    return statistics.median(newest) if newest else None


def check_silence(spec: MeterSpec, rules: PowerRules, state: State, now: float) -> PowerFinding | None:
    """Called by a timer with the source time the meter's feed has reached (``feed_time``):
    a live meter that stopped reporting, once per silence."""
    last = state.get("last_ts")
    if last is None or not state.get("live") or state.get("silent_since") is not None:
        return None
    if now - last < rules.silence_intervals * spec.interval_s:
        return None
    state["silent_since"] = last
    missing = int((now - last) // spec.interval_s)
    # Stamped at the moment silence began to count, so the same silence is the same finding.
    return PowerFinding("meter_silent", spec.meter_id, spec.site_id, last + rules.silence_intervals * spec.interval_s, 0.35,
                   f"a reading every {spec.interval_s // 60} minutes", f"nothing for {missing} intervals",
                   f"Meter {spec.meter_id} was live and went silent: a fault, or tampering.", last,
                   {"last_ts": last})


