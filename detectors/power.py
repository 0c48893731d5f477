"""Unexplained power draw: pure rules over one meter's interval readings.

Every rule works on plain data: a ``MeterSpec`` (what the ledger says the meter is), a
``PowerRules`` (thresholds from configs/thresholds.yaml) and a per-meter ``state`` dict
that is JSON-serializable, so a Faust table can hold it and recover it from a changelog.

    state = new_state()
    findings = observe(spec, rules, clock, state, ts, power_kw, energy_kwh, register_kwh)

Each ``PowerFinding`` says what was expected, what was seen and why it is unexplained, in
words a patrol member can read.

What "normal" is for a meter. Every threshold of the load rules is relative to the meter
itself, so one set of defaults holds from a 20 kW village meter to a 2 MW plant:

- the *envelope* of a reading is the most this meter ordinarily draws at this hour of day
  and day type (Monday, Tuesday-Thursday, Friday, Saturday, Sunday): the larger of the
  short baseline (median of its last ``baseline_samples`` readings, a few days) and the
  long reference (the ``reference_quantile`` of the hourly means of its last
  ``reference_days`` such days, weeks to months). The *profile* is the short median kept
  inside the long reference's range;
- an excess is measured as a share of the envelope (never of less than
  ``level_min_rated_fraction`` x the declared capacity, for meters that draw almost nothing
  at night), and never reported below ``max(excess_min_kw, excess_min_rated_fraction x
  rated_kw)`` (the absolute floor: the last resort);
- **each meter's own thresholds are learnt from its own clean nights** (``calibration_*``):
  for every night the rules keep the largest value each test reached; a test fires only
  above ``calibration_margin`` x the largest of the last ``calibration_nights`` clean
  nights (and above its fixed minimum). A meter whose nights vary by 30 % cannot promise to
  see +20 %; one whose nights are steady sees much less. ``detectable(state, rules)`` says
  what a meter can see now.

A baseline a thief cannot teach: a reading is learnt only once it is
``learn_delay_intervals`` old and outside every flagged episode (and ``guard_intervals``
after one); a night with a finding does not enter the calibration. Days in the closure
calendar (``MeterSpec.closed_dates``, from configs/meters.yaml) are neither judged by the
load rules nor learnt.

The rules:

- ``reconnection``: a line the utility cut (expected zero) draws above the noise floor;
- ``sustained_excess``: at night, the added load (reading minus envelope) summed over the
  last ``sustained_intervals`` intervals, as a share of the envelope, above this meter's
  own threshold: a steady rise is found in a few intervals, one odd reading is not enough;
- ``baseline_deviation``: one reading far above the envelope (a spike);
- ``irrigation_off_plan``: an irrigation pump running outside its season or hours;
- ``irrigation_overload``: a sustained night load far above the declared pump rating;
- ``night_industrial_load``: a flat added load (reading minus envelope) at night for hours;
- ``returning_rise``: the same jump at the same time of the dead of night on several nights in
  a row, beyond the jump the meter usually makes then (a thief coming back: one night's
  small rise hides in a restless meter's nights, three in a row at one time do not);
- ``partial_bypass``: a live meter far below both references for hours in the daytime of working days
  (lower weight: closures, holidays not in the calendar, empty houses look the same);
- ``register_jump_after_zeros``: a live meter reads zero for a while, then its register
  shows energy it never reported (bypass, then reconnect);
- ``meter_silent``: a live meter stops reporting (``check_silence``, run by a timer).
"""

from __future__ import annotations

import datetime
import functools
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ConfigDict

from detectors.timeofday import LocalClock

State = dict[str, Any]


@dataclass(frozen=True)
class PowerRules:
    """Thresholds for the power rules (configs/thresholds.yaml, section ``power``); the
    README's power section says what each means in plain words."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    noise_floor_kw: float = 0.5  # a cut line reading above this is drawing power
    reconnect_intervals: int = 1  # consecutive intervals above the floor before a signal
    # --- what normal is
    baseline_samples: int = 16  # short baseline: readings kept per hour x day type (4 days of one hour)
    baseline_min_samples: int = 8  # warm-up: fewer readings in the bucket, no load rule judges it
    reference_days: int = 36  # long reference: hourly means kept per hour x day type (12 weeks of Tue-Thu)
    reference_min_days: int = 3  # the long reference takes part once it has this many days
    reference_quantile: float = 0.9  # the envelope is this quantile of the long reference (a drop: 1 - it)
    learn_delay_intervals: int = 8  # a reading is learnt once this old (an episode found late is not learnt)
    guard_intervals: int = 4  # after a flagged episode, readings stay unlearnt this long
    # A change that lasts: findings on more than relearn_days of the last relearn_window_days
    # days, and the meter is learnt again (a thief is by then reported on 10 nights).
    relearn_days: int = 10
    relearn_window_days: int = 14
    # --- scale: every load rule is relative to the meter
    level_min_rated_fraction: float = 0.02  # an excess is a share of the envelope, never of less than this x rated
    excess_min_kw: float = 0.5  # an excess is at least this many kW (last resort, for near-zero levels)...
    excess_min_rated_fraction: float = 0.02  # ...and at least this fraction of the declared capacity
    # --- each meter's own thresholds, from its own clean nights
    calibration_nights: int = 60  # clean nights remembered per test (each night's largest value)
    calibration_min_nights: int = 14  # the calibrated tests judge once this many nights are known
    # A test fires above the median of those nights' values plus this many interquartile
    # ranges (and above the largest of them): the false-alarm rate is set here.
    calibration_spread: float = 3.0
    calibration_same_kind: int = 8  # ...and above the largest of the last 8 nights of its kind (8 weeks of Sundays)
    calibration_hold_days: int = 14  # a night with a finding joins the calibration only this many days later
    # --- sustained_excess: the added load over the last few intervals, at night
    sustained_intervals: int = 3
    sustained_min_share: float = 0.1  # never below 10 % of the envelope, however steady the meter
    # --- a new rise must start with a jump (sustained_excess and baseline_deviation): a load
    # that is connected makes the meter's draw jump; a plant that runs on past its usual
    # hours, or a season's slow rise, does not. The draw since the rise began must be above
    # the draw of the onset_intervals before it by at least onset_share of the added load.
    onset_share: float = 0.5  # 0: no jump needed
    onset_intervals: int = 2
    # --- returning_rise: a load connected at the same time of night, night after night. The
    # jump at a quarter-hour (the mean of the last 3 readings less that of the 4 before),
    # scored in spreads against the jumps this meter made then on its last
    # returning_reference_nights nights (or a quarter-hour either side: a shift that starts at
    # 22:30 every night, or moves to 22:15, is no news), high on returning_nights nights in a
    # row, each within returning_slack_quarters of the same time.
    returning_nights: int = 3  # 0: off
    returning_reference_nights: int = 28
    returning_min_reference: int = 14  # the time of night is judged once this many nights of it are known
    returning_slack_quarters: int = 1
    # Judged only in the dead of night: start-ups and shut-downs at the night's edges move
    # with the seasons and the shifts (on the real plants every false returning_rise was a
    # morning start-up between 04:15 and 05:45 after a schedule or clock change).
    returning_hours: tuple[int, int] = (22, 4)
    returning_min_score: float = 3.0  # never below 3 spreads (and above the meter's calibration)...
    returning_min_spread: float = 0.02  # ...where a spread is at least 2 % of the envelope...
    returning_min_share: float = 0.1  # ...and the jump above the usual one at least 10 % of the envelope
    # --- baseline_deviation: one reading far above the envelope
    deviation_score: float = 6.0  # this many spreads above the envelope...
    # ...where the spread is never taken below this fraction of the envelope: with the
    # default 6 x 0.2, a reading must be at least 2.2 x the envelope before it is a spike.
    deviation_rel_spread: float = 0.2
    deviation_min_rated_fraction: float = 0.1  # and at least this fraction of the declared capacity above it
    # --- irrigation
    irrigation_idle_kw: float = 1.0  # a pump "off" draws less than this
    irrigation_off_plan_intervals: int = 2
    irrigation_overload_factor: float = 1.5  # night load above rating x this
    irrigation_overload_intervals: int = 2
    # --- night_industrial_load: a flat added load at night, for hours
    night_load_intervals: int = 8  # 2 hours of 15-minute intervals
    night_load_min_share: float = 0.1  # the added load is at least this share of the envelope...
    night_load_max_cv: float = 0.25  # ...and flat: coefficient of variation of the ADDED load (reading - envelope)
    # --- partial_bypass: a live meter far below its references on working days
    drop_fraction: float = 0.5  # below this fraction of the lower reference...
    drop_intervals: int = 16  # ...for this many judged intervals (4 h)
    drop_min_rated_fraction: float = 0.02  # judged only where the reference is at least this x rated_kw
    # --- sequences, silence, lateness
    zero_run_intervals: int = 4  # zeros on a live meter before a jump counts
    silence_intervals: int = 4  # no reading for this many intervals: silent
    repeat_every_intervals: int = 4  # while a finding persists, repeat it this often
    late_limit_s: float = 86400.0  # readings older than the newest by more than this are ignored

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{name} must not be negative (got {value})")
        if self.baseline_min_samples > self.baseline_samples:
            raise ValueError("baseline_min_samples cannot exceed baseline_samples")
        if self.reference_min_days > self.reference_days:
            raise ValueError("reference_min_days cannot exceed reference_days")
        if self.calibration_min_nights > self.calibration_nights:
            raise ValueError("calibration_min_nights cannot exceed calibration_nights")
        if not 0.5 <= self.reference_quantile <= 1.0:
            raise ValueError("reference_quantile must be between 0.5 and 1")
        if len(self.returning_hours) != 2 or not all(0 <= h <= 23 for h in self.returning_hours) \
                or self.returning_hours[0] == self.returning_hours[1]:
            raise ValueError("returning_hours is [from hour, to hour], two different hours 0-23")
        if self.returning_slack_quarters > 4:
            raise ValueError("returning_slack_quarters is at most 4 (an hour either side)")
        if self.returning_nights == 1:
            raise ValueError("returning_nights is 0 (off) or at least 2: one night is sustained_excess's to judge")
        if self.returning_min_reference > self.returning_reference_nights:
            raise ValueError("returning_min_reference cannot exceed returning_reference_nights")
        if not 1 <= self.sustained_intervals <= self.night_load_intervals <= MAX_RUN_VALUES:
            raise ValueError(f"need 1 <= sustained_intervals <= night_load_intervals <= {MAX_RUN_VALUES}")


def parse_date(day: str) -> int:
    """Local date "YYYY-MM-DD" -> days since 1970-01-01 (LocalClock.day_number's count)."""
    try:
        return (datetime.date.fromisoformat(day) - datetime.date(1970, 1, 1)).days
    except (ValueError, TypeError):
        raise ValueError(f"closed date {day!r} is not YYYY-MM-DD") from None


@functools.lru_cache(maxsize=256)
def _closed_days(dates: tuple[str, ...]) -> frozenset[int]:
    return frozenset(parse_date(d) for d in dates)


@dataclass(frozen=True)
class MeterSpec:
    meter_id: str
    site_id: str
    kind: str  # mine_supply, irrigation, village, workshop
    expected_zero: bool
    rated_kw: float  # declared capacity (rated or contracted kW): sets the floors of the load rules
    interval_s: int = 900
    irrigation_months: tuple[int, ...] = ()
    irrigation_hours: tuple[int, int] = (0, 0)
    pump_kw: float = 0.0
    closed_dates: tuple[str, ...] = ()  # local dates the site is closed (the calendar in meters.yaml)


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
        # Any mapping with get() and item assignment: the power agent keeps each key under
        # its own table key, since a reading changes one or two keys and the rest stays.
        #   "h{hour}-{daytype}" -> the last baseline_samples learnt kW (short baseline)
        #   "L{hour}-{daytype}" -> the last reference_days hourly means (long reference)
        #   "cal" -> {test: [the largest value of each of the last calibration_nights clean nights]}
        #   "jumps" -> {quarter-hour of the day: its last returning_reference_nights learnt jumps}
        "buckets": {},
        "pending": [],  # [[ts, kW], ...] newest readings not yet learnt (learn_delay_intervals)
        "hour_acc": None,  # [day, hour, sum kW, n]: the hour being averaged for the long reference
        "quarantine": [],  # [[start, end or None], ...] flagged episodes: never learnt (last 4)
        "flag_days": [],  # local day numbers that had a load finding (last 16), for relearn_days
        # The last judged intervals, contiguous: [[ts, kW above envelope, kW above profile, level, kW], ...]
        "recent": [],
        "tonight": None,  # [night, {test: largest value so far}, flagged, {test: threshold}]: the night being judged
        # returning_rise, for the last returning_nights - 1 nights and tonight: [night,
        # {quarter-hour: score of its jump}, {quarter-hour: jump to learn} or None]
        "jumps": [],
        "runs": {},  # rule -> {"start": ts, "count": n, "last": ts, "values": [...]}
        "live": False,  # has drawn power before (for silence and tamper rules)
        "silent_since": None,
        "resets": 0,
    }


DAY_TYPES = ("mon", "mid", "mid", "mid", "fri", "sat", "sun")  # by tm_wday
SHORT_BUCKETS = tuple(f"h{hour}-{day}" for hour in range(24) for day in dict.fromkeys(DAY_TYPES))
LONG_BUCKETS = tuple(f"L{hour}-{day}" for hour in range(24) for day in dict.fromkeys(DAY_TYPES))
CALIBRATION = "cal"
JUMPS = "jumps"  # returning_rise's reference: per quarter-hour of the day, the jumps of the last nights
QUARTERS = 96  # quarter-hours of a day
QUARTER_S = 900  # returning_rise judges 15-minute meters (the collection systems' 96 points a day)
BUCKETS = SHORT_BUCKETS + LONG_BUCKETS + (CALIBRATION, JUMPS)  # every key the rules may write into state["buckets"]
TESTS = ("spike", "sustained", "returning")  # the calibrated tests: baseline_deviation, sustained_excess, returning_rise
LOAD_RULES = ("sustained_excess", "baseline_deviation", "night_industrial_load", "returning_rise", "partial_bypass")
QUARANTINE_KEEP = 4
MAX_RUN_VALUES = 16


def _bucket(ts: float, clock: LocalClock) -> str:
    """Hour of day x day type, as utilities profile load. Monday and Friday are their own
    types: their early hours follow a weekend night, their evening leads into one."""
    t = clock.local(ts)
    return f"h{t.tm_hour}-{DAY_TYPES[t.tm_wday]}"


def closed(ts: float, spec: MeterSpec, clock: LocalClock) -> bool:
    """In the closure calendar: a closed date covers that day and the nights on either side
    (from night start the evening before to night end the morning after), since a site that
    is closed tomorrow runs down tonight and restarts the morning after."""
    if not spec.closed_dates:
        return False
    local = clock.local(ts)
    day = clock.day_number(ts)
    candidates = {day}
    if local.tm_hour >= clock.night_start_h:
        candidates.add(day + 1)  # the evening before a closed day
    if local.tm_hour < clock.night_end_h:
        candidates.add(day - 1)  # the morning after one
    return not _closed_days(spec.closed_dates).isdisjoint(candidates)


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


def _median(ordered: list[float]) -> float:
    """The median of a sorted, non-empty list (statistics.median without its checks and
    its own sort: the rules ask for two of them for every reading)."""
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _median_spread(values: list[float]) -> tuple[float, float]:
    median = _median(sorted(values))
    return median, 1.4826 * _median(sorted([abs(v - median) for v in values]))


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of a sorted list."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Reference:
    """What this meter draws at this hour and day type, from what it has been taught."""

    short: float  # median of the short baseline (the last few days)
    spread: float  # robust spread of the short baseline's readings (kW)
    long_low: float  # long reference (weeks): its lower quantile (1 - reference_quantile)...
    long_mid: float  # ...median...
    long_high: float  # ...and upper quantile (reference_quantile)

    @property
    def profile(self) -> float:
        """The short median, kept inside the range the long reference has seen: a baseline
        taught in a few days cannot stray from what weeks of this meter say."""
        return min(max(self.short, self.long_low), self.long_high)

    @property
    def envelope(self) -> float:
        """The most this meter ordinarily draws now: an excess must be above both levels."""
        return max(self.short, self.long_high)

    @property
    def floor(self) -> float:
        """The least it ordinarily draws now (a drop must be below both)."""
        return min(self.short, self.long_low)


def baseline(state: State, ts: float, rules: PowerRules, clock: LocalClock) -> Reference | None:
    """The reference at ``ts`` once both the short baseline and the long reference of its
    bucket are warm, else None."""
    key = _bucket(ts, clock)
    values = state["buckets"].get(key) or []
    if len(values) < rules.baseline_min_samples:
        return None
    days = state["buckets"].get("L" + key[1:]) or []
    if len(days) < rules.reference_min_days:
        return None  # a few days of a day type are not yet its normal
    short, spread = _median_spread(values)
    ordered = sorted(days)
    return Reference(short, spread, _quantile(ordered, 1.0 - rules.reference_quantile), _quantile(ordered, 0.5),
                     _quantile(ordered, rules.reference_quantile))


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
    current["values"] = (current["values"] + [round(value, 4)])[-MAX_RUN_VALUES:]
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


# --------------------------------------------------------------------------- learning


def _quarantine(state: State, start: float, end: float | None) -> None:
    """Readings from ``start`` to ``end`` (None: still going) are never learnt."""
    q = state["quarantine"]
    if q and q[-1][1] is None and q[-1][0] <= start:
        return  # inside the open episode already
    if q and q[-1][1] is not None and start <= q[-1][1]:
        q[-1] = [min(q[-1][0], start), end if end is None else max(end, q[-1][1])]
    else:
        q.append([start, end])
    del q[:-QUARANTINE_KEEP]


def _close_quarantine(state: State, end: float) -> None:
    q = state["quarantine"]
    if q and q[-1][1] is None:
        q[-1][1] = end


def _quarantined(state: State, ts: float, guard_s: float) -> bool:
    return any(start <= ts and (end is None or ts <= end + guard_s) for start, end in state["quarantine"])


def _mark_flag_day(state: State, ts: float, clock: LocalClock) -> None:
    """Remember the local days that had a flagged episode (the last 16)."""
    day = clock.day_number(ts)
    days = state["flag_days"]
    if not days or days[-1] != day:
        state["flag_days"] = (days + [day])[-16:]


def new_normal(state: State, ts: float, rules: PowerRules, clock: LocalClock) -> bool:
    """Episodes on more than ``relearn_days`` of the last ``relearn_window_days`` days: the
    meter has changed (or a thief has been reported that often), so it is learnt again."""
    if rules.relearn_days <= 0:
        return False
    day = clock.day_number(ts)
    recent = [d for d in state["flag_days"] if day - rules.relearn_window_days < d <= day]
    return len(recent) > rules.relearn_days


def _learn(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float, kw: float,
           hourly: bool) -> None:
    """Teach one reading to the short baseline and, for readings in time order, to the
    hourly mean that becomes a day of the long reference."""
    if closed(ts, spec, clock):
        return
    key = _bucket(ts, clock)
    buckets = state["buckets"]
    buckets[key] = ((buckets.get(key) or []) + [round(kw, 4)])[-rules.baseline_samples:]
    if not hourly:
        return
    day, hour = clock.day_number(ts), clock.local(ts).tm_hour
    acc = state["hour_acc"]
    if acc is not None and (acc[0], acc[1]) != (day, hour):
        _flush_hour(spec, rules, clock, state)
        acc = None
    if acc is None:
        acc = state["hour_acc"] = [day, hour, 0.0, 0]
    acc[2] += kw
    acc[3] += 1


def _flush_hour(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State) -> None:
    """An hour's learnt readings end: its mean becomes one day of the long reference, if at
    least half the hour was learnt (a partly flagged hour is left out)."""
    acc = state["hour_acc"]
    state["hour_acc"] = None
    per_hour = max(1, round(3600 / spec.interval_s))
    if acc is None or acc[3] * 2 < per_hour:
        return
    day, hour = acc[0], acc[1]
    wday = (day + 3) % 7  # 1970-01-01 was a Thursday (tm_wday 3)
    key = f"L{hour}-{DAY_TYPES[wday]}"
    buckets = state["buckets"]
    buckets[key] = ((buckets.get(key) or []) + [round(acc[2] / acc[3], 4)])[-rules.reference_days:]


def _commit_pending(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, newest: float) -> None:
    """Learn the pending readings that are old enough and outside every flagged episode."""
    horizon = newest - rules.learn_delay_intervals * spec.interval_s
    guard_s = rules.guard_intervals * spec.interval_s
    pending = state["pending"]  # in time order
    due = 0
    while due < len(pending) and pending[due][0] <= horizon:
        due += 1
    for ts, kw in pending[:due]:
        if not _quarantined(state, ts, guard_s) or new_normal(state, ts, rules, clock):
            _learn(spec, rules, clock, state, ts, kw, hourly=True)
    if due:
        state["pending"] = pending[due:]


# --------------------------------------------------------------------------- calibration


def _night(ts: float, clock: LocalClock) -> int:
    """The night a time belongs to, as a count of days: from one night end to the next (a
    night keeps one number across midnight)."""
    return clock.day_number(ts - clock.night_end_h * 3600)


def _calibration(state: State) -> dict[str, list[float]]:
    return state["buckets"].get(CALIBRATION) or {}


def night_type(ts: float, clock: LocalClock) -> str:
    """The day type of the evening a night starts on (a Sunday night leads into a week)."""
    return DAY_TYPES[(_night(ts, clock) + 3) % 7]  # 1970-01-01 was a Thursday (tm_wday 3)


def threshold(state: State, test: str, minimum: float, rules: PowerRules, kind_of_night: str = "mid") -> float | None:
    """The value above which ``test`` fires on this meter on this kind of night (a share of
    the envelope; for ``returning``, a score in spreads): from the largest values of its last clean nights, their median plus
    ``calibration_spread`` x their interquartile range (a tail beyond what a few weeks show,
    estimated from their spread), never below the largest of them, nor below the largest of
    the last ``calibration_same_kind`` nights of the same kind (Monday, Tuesday-Thursday,
    Friday, Saturday, Sunday night), nor below ``minimum``; None while fewer than
    calibration_min_nights are known."""
    cal = _calibration(state)
    values = cal.get(test) or []
    if len(values) < rules.calibration_min_nights:
        return None
    ordered = sorted(values)
    q25, q50, q75 = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
    same_kind = cal.get(f"{test}-{kind_of_night}") or [minimum]  # a weekly pattern (a Monday restart) is normal
    return max(minimum, ordered[-1], max(same_kind), q50 + rules.calibration_spread * (q75 - q25))


def _limits(state: State, ts: float, clock: LocalClock, rules: PowerRules) -> dict:
    """Tonight's thresholds: the calibration changes once a night, so they are worked out
    once a night (kept in tonight's entry of the state)."""
    tonight = state["tonight"]
    if len(tonight) < 4:
        kind = night_type(ts, clock)
        tonight.append({"spike": threshold(state, "spike", rules.deviation_score * rules.deviation_rel_spread, rules,
                                           kind),
                        "sustained": threshold(state, "sustained", rules.sustained_min_share, rules, kind),
                        "returning": threshold(state, "returning", rules.returning_min_score, rules, kind)})
    return tonight[3]


def _note(state: State, ts: float, clock: LocalClock, rules: PowerRules, **values: float | None) -> None:
    """Keep tonight's largest value of each test; when a new night starts, the last one
    joins the calibration if it was clean."""
    night = _night(ts, clock)
    tonight = state["tonight"]
    if tonight is not None and tonight[0] != night:
        _close_night(state, rules)
        tonight = None
    if tonight is None:
        tonight = state["tonight"] = [night, {}, False]
    best = tonight[1]
    for test, value in values.items():
        if value is not None and (test not in best or value > best[test]):
            best[test] = round(value, 4)


def _flag_night(state: State, ts: float, clock: LocalClock, rules: PowerRules, closure: bool = False) -> None:
    """Tonight had a finding: it is held back from the calibration, and its jumps are not
    learnt (returning_rise). A closure: it never enters the calibration."""
    _note(state, ts, clock, rules)
    state["tonight"][2] = True
    if closure:
        state["tonight"][1] = {}
    jumps = state.get("jumps")
    if jumps and jumps[-1][0] == _night(ts, clock) and not new_normal(state, ts, rules, clock):
        jumps[-1][2] = None  # nor does it teach returning_rise what jumps are usual


def _close_night(state: State, rules: PowerRules) -> None:
    """Tonight's largest values join the calibration. A night with a finding is held back
    for ``calibration_hold_days`` first: a thief returning night after night cannot raise
    the threshold within that time, while a new pattern that lasts (a weekly night shift,
    a season) becomes this meter's normal after it."""
    night, best, flagged = state["tonight"][:3]
    state["tonight"] = None
    cal = dict(_calibration(state))
    held = list(cal.get("held") or [])
    if best and flagged:
        # returning_rise's scores of a night with a finding never join the calibration: a
        # lasting new routine becomes normal in its reference of jumps (new_normal), and a
        # thief's nights would raise the bar for weeks.
        held.append([night, {test: value for test, value in best.items() if test != "returning"}])
    elif best:
        _calibrate(cal, night, best, rules)
    while held and held[0][0] <= night - rules.calibration_hold_days:
        _calibrate(cal, *held.pop(0), rules)
    cal["held"] = held[-rules.calibration_hold_days:]
    if best or cal != _calibration(state):
        state["buckets"][CALIBRATION] = cal


def _calibrate(cal: dict, night: int, best: dict[str, float], rules: PowerRules) -> None:
    kind = DAY_TYPES[(night + 3) % 7]
    for test, value in best.items():
        cal[test] = ((cal.get(test) or []) + [value])[-rules.calibration_nights:]
        key = f"{test}-{kind}"
        cal[key] = ((cal.get(key) or []) + [value])[-rules.calibration_same_kind:]


def detectable(state: State, rules: PowerRules) -> dict[str, float | None]:
    """What this meter can see now (None: still learning): ``sustained`` the added load that
    sustained_excess needs over sustained_intervals and ``spike`` one reading's excess that
    baseline_deviation needs, as shares of its envelope; ``returning`` the score, in spreads
    of the jumps usual at that time, that returning_rise needs on each of returning_nights
    nights (and the jump above the usual one is at least returning_min_share)."""
    return {"sustained": threshold(state, "sustained", rules.sustained_min_share, rules),
            "spike": threshold(state, "spike", rules.deviation_score * rules.deviation_rel_spread, rules),
            "returning": threshold(state, "returning", rules.returning_min_score, rules)}


# --------------------------------------------------------------------------- rules


def observe(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float,
            power_kw: float | None = None, energy_kwh: float | None = None,
            register_kwh: float | None = None) -> list[PowerFinding] | None:
    """Take one reading into the state; return what it makes unexplained (often nothing).

    Returns None when the reading was not used: the same interval again (a re-sent batch:
    one reading per meter per interval counts), or later than ``late_limit_s`` behind the
    newest reading. Late readings within the limit teach the short baseline (unless they
    fall in a flagged episode) but do not take part in the rules that follow a sequence.
    Everything is judged by the reading's own time (its hour, day type, night, calendar),
    so a replay of old data is judged as it was then.
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
    in_order = last is None or ts > last

    if in_order:
        findings += _register_rules(spec, rules, state, ts, kw, energy_kwh, register_kwh, expected)
        findings += _sequence_rules(spec, rules, clock, state, ts, kw, expected)
        state["last_ts"] = ts
        state["silent_since"] = None
    if kw > rules.noise_floor_kw:
        state["live"] = True
    # Learn last, and late: a reading is judged against the past, and it is learnt only
    # once an episode that it may open has had time to be found.
    if in_order:
        state["pending"].append([ts, round(kw, 4)])
        _commit_pending(spec, rules, clock, state, ts)
    elif state["pending"] and ts >= state["pending"][0][0]:
        state["pending"] = sorted(state["pending"] + [[ts, round(kw, 4)]])
    elif not _quarantined(state, ts, rules.guard_intervals * spec.interval_s):
        _learn(spec, rules, clock, state, ts, kw, hourly=False)
    return findings


def floor_kw(spec: MeterSpec, rules: PowerRules) -> float:
    """The smallest excess any load rule reports on this meter."""
    return max(rules.excess_min_kw, rules.excess_min_rated_fraction * spec.rated_kw)


def _sequence_rules(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float, kw: float,
                    expected: Reference | None) -> list[PowerFinding]:
    out: list[PowerFinding] = []
    local = clock.local(ts)
    hour, month = local.tm_hour, local.tm_mon
    night = clock.is_night_hour(hour)
    interval = spec.interval_s

    def finding(kind: str, run: dict, strength: float, expected_words: str, seen: str, why: str,
                expected_kw: float | None = None, **details):
        if kind in LOAD_RULES:
            _mark_flag_day(state, ts, clock)
            _flag_night(state, ts, clock, rules)
        # The evidence a person reads: the readings of the last two hours (those not yet
        # learnt, kept anyway) and this one, against what the meter should draw.
        samples = [list(p) for p in state["pending"] if p[0] < ts] + [[ts, round(kw, 4)]]
        out.append(PowerFinding(kind, spec.meter_id, spec.site_id, ts, round(min(1.0, max(0.0, strength)), 3),
                                expected_words, seen, why, run["start"],
                                {"kw": kw, "intervals": run["count"], "samples": samples,
                                 "expected_kw": None if expected_kw is None else round(expected_kw, 3), **details}))

    # A cut line drawing power.
    if spec.expected_zero:
        run = _run(state, "reconnection", kw > rules.noise_floor_kw, ts, interval, kw)
        if run and _due(run, rules.reconnect_intervals, rules):
            finding("reconnection", run, 0.7 + 0.3 * min(1.0, kw / 20.0), "0 kW (the utility cut this line)",
                    f"{kw:.1f} kW for {run['count']} interval(s)",
                    f"Meter {spec.meter_id} feeds a closed mine whose supply was cut, yet it draws power.",
                    expected_kw=0.0)
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
                    f"Irrigation meter {spec.meter_id} draws power {when}.", expected_kw=rules.irrigation_idle_kw)
        limit = spec.pump_kw * rules.irrigation_overload_factor
        run = _run(state, "irrigation_overload", night and kw > limit, ts, interval, kw)
        if run and _due(run, rules.irrigation_overload_intervals, rules):
            finding("irrigation_overload", run, 0.6 + 0.4 * min(1.0, kw / (limit * 2)),
                    f"at most {spec.pump_kw:g} kW (the declared pump)", f"{kw:.1f} kW at night",
                    f"Irrigation meter {spec.meter_id} carries far more than its pump at night.",
                    expected_kw=spec.pump_kw)

    is_closed = expected is not None and closed(ts, spec, clock)
    if expected is None or is_closed:
        # Warming up, or a closed day: the load rules do not judge; their runs end, and a
        # closed night does not teach the calibration.
        for rule in LOAD_RULES:  # partial_bypass's episode survives a closed day, not a warm-up
            if rule != "partial_bypass" or expected is None:
                state["runs"].pop(rule, None)
        if expected is not None:
            _flag_night(state, ts, clock, rules, closure=True)
        state["recent"] = []
        _close_if_idle(state, ts)
        return out

    floor = floor_kw(spec, rules)
    envelope, profile = expected.envelope, expected.profile
    # An excess is a share of the envelope; a meter that draws almost nothing at night is
    # measured against a small part of its declared capacity instead.
    level = max(envelope, rules.level_min_rated_fraction * spec.rated_kw, 2 * rules.noise_floor_kw)
    recent = state["recent"]
    if explained_by_plan or (recent and ts - recent[-1][0] > interval * 1.5):
        recent = []  # a gap (or a pump running to plan) ends the window
    if not explained_by_plan:
        recent.append([ts, round(kw - envelope, 4), round(kw - profile, 4), round(level, 4), round(kw, 4)])
        del recent[:-(rules.night_load_intervals + rules.onset_intervals)]
    state["recent"] = recent

    # The three calibrated tests' values now, as shares of the envelope.
    spike = None if explained_by_plan else (kw - envelope) / level
    sustained = None
    n = rules.sustained_intervals
    if night and len(recent) >= n:
        window = recent[-n:]
        sustained = sum(r[1] for r in window) / sum(r[3] for r in window)
    _note(state, ts, clock, rules, spike=spike, sustained=sustained)

    # One reading far above everything normal now: a spike.
    spread = max(expected.spread, rules.deviation_rel_spread * envelope, floor / rules.deviation_score)
    score = (kw - envelope) / spread
    big = max(floor, rules.deviation_min_rated_fraction * spec.rated_kw)
    limits = _limits(state, ts, clock, rules)
    needed = limits["spike"]
    deviating = spike is not None and needed is not None and spike >= needed and score >= rules.deviation_score \
        and kw - envelope >= big \
        and ("baseline_deviation" in state["runs"] or jumped(recent, needed, kw - envelope, rules))
    run = _run(state, "baseline_deviation", deviating, ts, interval, kw)
    if run:
        _quarantine(state, run["start"], None)
    if run and _due(run, 1, rules):
        finding("baseline_deviation", run, 0.4 + 0.5 * min(1.0, score / (rules.deviation_score * 3)),
                f"at most about {envelope:.1f} kW at this hour", f"{kw:.1f} kW (score {score:.0f})",
                f"Meter {spec.meter_id} draws far more than it does at this hour.", expected_kw=envelope,
                score=round(score, 1),
                needed_share=round(needed, 3))

    # A sustained rise at night: the added load of the last few intervals.
    needed = limits["sustained"]
    window = recent[-n:]
    added_kw = sum(r[1] for r in window) / n if sustained is not None else 0.0
    # Every one of those intervals carries at least half the share needed: one big reading is not a rise.
    steady = needed is not None and sustained is not None and all(r[1] >= needed * r[3] / 2 for r in window)
    run = state["runs"].get("sustained_excess")
    # A new episode starts with a jump; one already found goes on while it stays above.
    firing = steady and sustained >= needed and added_kw >= floor \
        and (run is not None or jumped(recent, needed, added_kw, rules))
    if firing or (run is not None and night and recent and recent[-1][1] > 0):  # the episode lasts while above
        run = _run(state, "sustained_excess", True, ts, interval, added_kw)
        if run["count"] == 1:
            run["start"] = window[0][0]
        _quarantine(state, run["start"], None)
        if firing and _due(run, 1, rules):
            finding("sustained_excess", run, 0.6 + 0.3 * min(1.0, sustained),
                    f"at most about {envelope:.1f} kW now", f"{kw:.1f} kW, {added_kw:+.1f} kW "
                    f"({sustained:.0%}) above it on average over the last {n} intervals",
                    f"Meter {spec.meter_id} has drawn more than it ever does at this hour for a while.",
                    expected_kw=envelope,
                    added_kw=round(added_kw, 2), added_share=round(sustained, 3), needed_share=round(needed, 3))
    elif run is not None:
        state["runs"].pop("sustained_excess")
        _close_if_idle(state, ts)

    # Within such an episode, a flat added load for hours: pumps, a winch, a crusher.
    m = rules.night_load_intervals
    episode = state["runs"].get("sustained_excess")
    flat_kw = cv = None
    if episode is not None and len(recent) >= m and recent[-m][0] >= episode["start"]:
        added = [r[1] for r in recent[-m:]]
        flat_kw = statistics.mean(added)
        cv = statistics.pstdev(added) / flat_kw if flat_kw > 0 else None
    share = flat_kw / statistics.mean(r[3] for r in recent[-m:]) if cv is not None else 0.0
    firing = cv is not None and cv <= rules.night_load_max_cv and min(added) > 0 and flat_kw >= floor \
        and share >= rules.night_load_min_share
    run = _run(state, "night_industrial_load", firing, ts, interval, flat_kw or 0.0)
    if run:
        if run["count"] == 1:
            run["start"] = episode["start"]
        _quarantine(state, run["start"], None)
    else:
        _close_if_idle(state, ts)
    if run and _due(run, 1, rules):
        hours = (ts - run["start"]) / 3600 + interval / 3600
        finding("night_industrial_load", run, 0.7 + 0.2 * min(1.0, hours / 6),
                f"at most about {envelope:.1f} kW at night",
                f"a steady {flat_kw:+.1f} kW ({share:.0%}) on top for {hours:.1f} h",
                f"A steady industrial-like load runs at night on meter {spec.meter_id}, where it should be quiet.",
                expected_kw=envelope,
                cv=round(cv, 3), added_kw=round(flat_kw, 2), added_share=round(share, 3))

    # The same jump at the same time of night, night after night: a thief coming back.
    if rules.returning_nights:
        _returning_rule(spec, rules, clock, state, ts, recent, limits, floor, finding)

    # Far below both references on a working day, for hours: part of the load bypasses the meter.
    if spec.kind != "irrigation":
        _drop_rule(spec, rules, clock, state, ts, kw, expected, finding)
    return out


def _returning_quarter(ts: float, clock: LocalClock, rules: PowerRules) -> tuple[str, bool] | None:
    """The quarter-hour of the day of ``ts`` ("0" .. "95", a JSON key) if returning_rise
    keeps it (returning_hours, and returning_slack_quarters either side), and whether it is
    judged (inside the hours themselves)."""
    start_h, end_h = rules.returning_hours
    t = clock.local(ts)
    quarter = (t.tm_hour * 60 + t.tm_min) // 15
    since_start = (quarter - start_h * 4) % QUARTERS
    width = (end_h - start_h) % 24 * 4
    slack = rules.returning_slack_quarters
    judged = since_start < width
    if not (judged or since_start < width + slack or since_start >= QUARTERS - slack):
        return None
    return str(quarter), judged


def _near(quarter: str, slack: int) -> list[str]:
    """A quarter-hour and the ``slack`` either side of it."""
    q = int(quarter)
    return [str((q + k) % QUARTERS) for k in range(-slack, slack + 1)]


def _learn_jumps(state: State, jumps: dict[str, float] | None, rules: PowerRules) -> dict[str, list[float]]:
    """A night's learnable jumps join the reference of their quarter-hours (one bucket,
    written once a night; the table's value is copied, never changed in place)."""
    reference = state["buckets"].get(JUMPS)
    reference = {q: list(v) for q, v in reference.items()} if isinstance(reference, dict) else {}
    if jumps:
        for quarter, jump in jumps.items():
            reference[quarter] = (reference.get(quarter, []) + [jump])[-rules.returning_reference_nights:]
        state["buckets"][JUMPS] = reference
    return reference


def _tonight_flagged(state: State, night: int) -> bool:
    tonight = state.get("tonight")
    return tonight is not None and tonight[0] == night and tonight[2]


def _returning_rule(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float,
                    recent: list[list[float]], limits: dict, floor: float, finding) -> None:
    """returning_rise (15-minute meters): tonight's jump at this quarter-hour, scored against
    the jumps this meter made then, is also high within ``returning_slack_quarters`` of this
    time on each of the returning_nights - 1 nights before (consecutive nights). One night's
    +20 % hides in a restless meter's nights; the same +20 % at the same time on three nights
    in a row does not, unless the meter itself does that (then its reference learns it)."""
    scored = _returning_score(spec, rules, clock, state, ts, recent) if spec.interval_s == QUARTER_S else None
    needed = limits.get("returning")  # None in a night whose limits were set before this rule existed
    firing = scored is not None and scored["value"] is not None and needed is not None \
        and scored["value"] >= needed and scored["added_kw"] >= max(floor, rules.returning_min_share * scored["level"])
    run = _run(state, "returning_rise", firing, ts, spec.interval_s, scored["jump_kw"] if firing else 0.0)
    if run is None:
        _close_if_idle(state, ts)  # every path that is not firing ends the run and its quarantine
        return
    if run["count"] == 1:
        run["start"] = scored["start"]
    _quarantine(state, run["start"], None)
    if _due(run, 1, rules):
        at = time.strftime("%H:%M", clock.local(scored["start"]))
        usual_kw, spread_kw = scored["usual"] * spec.rated_kw, scored["spread"] * spec.rated_kw
        # Lower weight: a new nightly routine (a timer, a new batch) looks the same at first.
        finding("returning_rise", run, 0.5,
                f"no new load at about {at} (this meter's draw usually changes by {usual_kw:+.1f} "
                f"± {spread_kw:.1f} kW then)",
                f"{scored['jump_kw']:+.1f} kW at {at}, after a rise at the same time on each of the "
                f"{rules.returning_nights - 1} nights before",
                f"A load is connected on meter {spec.meter_id} at the same time night after night: "
                "someone coming back (or a new nightly routine).",
                jump_kw=round(scored["jump_kw"], 2), added_kw=round(scored["added_kw"], 2),
                score=round(scored["value"], 1), needed_score=round(needed, 1), nights=rules.returning_nights)


def _returning_score(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float,
                     recent: list[list[float]]) -> dict | None:
    """Keep tonight's jump at this quarter-hour (its score, and the jump itself to learn when
    the night ends); at a judged quarter-hour, return what returning_rise judges: ``value``
    (the smallest of tonight's score and each night before's largest near this time; None
    without returning_nights consecutive scored nights), the jump and its context."""
    where = _returning_quarter(ts, clock, rules)
    if where is None or len(recent) < 7 or recent[-1][0] - recent[-7][0] > 6.5 * spec.interval_s \
            or any(len(r) < 5 for r in recent[-7:]):
        return None  # outside the hours, or not the 7 contiguous judged readings, with their draw, a jump needs
    quarter, judged = where
    after, before = recent[-3:], recent[-7:-3]
    level = sum(r[3] for r in after) / 3
    jump_kw = sum(r[4] for r in after) / 3 - sum(r[4] for r in before) / 4
    # Jumps are kept as shares of the declared capacity: a fixed unit, where the envelope
    # moves as the meter learns (a usual jump would drift against it).
    jump = jump_kw / spec.rated_kw
    night = _night(ts, clock)
    nights = state.get("jumps")
    if not isinstance(nights, list) or (nights and not isinstance(nights[-1][1], dict)):
        nights = []  # none yet, or kept by an earlier version of this rule
    state["jumps"] = nights
    reference = state["buckets"].get(JUMPS)
    if not nights or nights[-1][0] != night:
        if nights:
            reference = _learn_jumps(state, nights[-1][2], rules)
            nights[-1][2] = None
        # [night, {quarter: score}, {quarter: jump to learn} or None: a night with a finding
        # teaches nothing, unless the meter has changed (new_normal)]
        learnable = not _tonight_flagged(state, night) or new_normal(state, ts, rules, clock)
        nights.append([night, {}, {} if learnable else None])
        del nights[:-rules.returning_nights]
    if not isinstance(reference, dict):
        reference = {}
    # The usual jump then: at this quarter-hour or, as a plant's machines start and stop a
    # quarter-hour earlier or later from night to night, at one next to it (the one that
    # makes this jump least unusual, in spreads).
    nearby = _near(quarter, rules.returning_slack_quarters)
    usual = spread = score = None
    for near in nearby:
        learnt = reference.get(near) or []
        if len(learnt) >= rules.returning_min_reference:
            median, mad = _median_spread(learnt)
            mad = max(mad, rules.returning_min_spread * level / spec.rated_kw)
            if score is None or (jump - median) / mad < score:
                usual, spread, score = median, mad, (jump - median) / mad
    if score is not None:
        nights[-1][1][quarter] = round(score, 2)
    if nights[-1][2] is not None and (not _quarantined(state, ts, rules.guard_intervals * spec.interval_s)
                                      or new_normal(state, ts, rules, clock)):
        nights[-1][2][quarter] = round(jump, 4)
    if not judged or score is None:
        return None
    earlier = nights[:-1]
    value = None
    if len(earlier) == rules.returning_nights - 1 \
            and [n for n, _, _ in earlier] == list(range(night - len(earlier), night)):
        highs = [max((scores[q] for q in nearby if q in scores), default=None)
                 for _, scores, _ in earlier]
        if None not in highs:
            value = min([score] + highs)
    _note(state, ts, clock, rules, returning=value)
    return {"value": value, "jump_kw": jump_kw, "added_kw": (jump - usual) * spec.rated_kw, "usual": usual,
            "spread": spread, "level": level, "start": after[0][0]}


def jumped(recent: list[list[float]], needed_share: float, added_kw: float, rules: PowerRules) -> bool:
    """Did the load jump when this rise began? The rise is the judged intervals at the end
    of ``recent`` that carry at least half of ``needed_share`` (of the envelope) above the
    envelope; its mean draw must be above the mean of the ``onset_intervals`` before it by at
    least ``onset_share`` of ``added_kw``. The interval just before the rise is left out: it
    is below the bar by how the rise was found, so on a noisy meter it would make a slow
    rise look like a jump. A rise older than the intervals kept, or just after a gap or a
    warm-up, shows no jump."""
    if rules.onset_share <= 0:
        return True
    start = len(recent)
    while start > 0 and recent[start - 1][1] >= needed_share * recent[start - 1][3] / 2:
        start -= 1
    rise, before = recent[start:], recent[max(0, start - 1 - rules.onset_intervals):max(0, start - 1)]
    if not rise or not before:
        return False
    if any(len(r) < 5 for r in before + rise):
        return True  # kept by an older version, without the draw: judged as it was then
    step = sum(r[4] for r in rise) / len(rise) - sum(r[4] for r in before) / len(before)
    return step >= rules.onset_share * added_kw


def _close_if_idle(state: State, ts: float) -> None:
    """End the open quarantine once no rule that flags an episode is active."""
    if state["runs"].keys().isdisjoint(LOAD_RULES):
        _close_quarantine(state, ts)


def _drop_rule(spec: MeterSpec, rules: PowerRules, clock: LocalClock, state: State, ts: float, kw: float,
               expected: Reference, finding) -> None:
    """partial_bypass: judged in the working hours of working days (outside the night:
    whether a plant runs a night shift varies far more than what it draws by day), where the
    reference is worth judging; other intervals neither count nor end the episode, so a
    bypass found is found once."""
    working = DAY_TYPES[clock.local(ts).tm_wday] not in ("sat", "sun") and not clock.is_night(ts)
    low = expected.floor
    judged = working and state["live"] and low >= max(2 * rules.noise_floor_kw,
                                                      rules.drop_min_rated_fraction * spec.rated_kw)
    runs = state["runs"]
    current = runs.get("partial_bypass")
    if not judged:
        return
    if kw >= rules.drop_fraction * low:
        if current is not None:
            runs.pop("partial_bypass")
            _close_if_idle(state, ts)
        return
    if current is None:
        current = runs["partial_bypass"] = {"start": ts, "count": 0, "last": ts, "values": []}
    current["count"] += 1
    current["last"] = ts
    current["values"] = (current["values"] + [round(kw / low, 3)])[-MAX_RUN_VALUES:]
    if current["count"] >= rules.drop_intervals:
        _quarantine(state, current["start"], None)
    if current["count"] == rules.drop_intervals:
        share = statistics.mean(current["values"][-rules.drop_intervals:])
        finding("partial_bypass", current, 0.3, f"at least {rules.drop_fraction * low:.1f} kW "
                f"({rules.drop_fraction:.0%} of the {low:.1f} kW usual at this hour)",
                f"{share:.0%} of the usual for {current['count']} working interval(s)",
                f"Meter {spec.meter_id} is live but reads far below its usual level for hours on a working day: "
                "part of the load may bypass it (or the site is closed: check the calendar).",
                share=round(share, 3))


def _register_rules(spec: MeterSpec, rules: PowerRules, state: State, ts: float, kw: float,
                    energy_kwh: float | None, register_kwh: float | None,
                    expected: Reference | None) -> list[PowerFinding]:
    """Zero then jump: energy shows up on the register that the readings never reported."""
    out: list[PowerFinding] = []
    should_draw = expected is not None and expected.short > rules.noise_floor_kw * 2
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
    return PowerFinding("meter_silent", spec.meter_id, spec.site_id, last + rules.silence_intervals * spec.interval_s,
                        0.35, f"a reading every {spec.interval_s // 60} minutes", f"nothing for {missing} intervals",
                        f"Meter {spec.meter_id} was live and went silent: a fault, or tampering.", last,
                        {"last_ts": last})
