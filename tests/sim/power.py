"""A seeded generator of realistic meter series with injected, labelled anomalies.

Used by the power tests and by `make bench-power` (quality report and throughput).
Series have daily and weekly cycles, irrigation seasons, noise and missing readings;
anomalies of every kind the power rules know are injected at random times and labelled
with their meter, kind and time span, so a report can score precision, recall and delay.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from detectors.power import MeterSpec
from detectors.timeofday import LocalClock

STEP = 900
CLOCK = LocalClock()  # the demo county's: UTC+8


@dataclass
class Anomaly:
    meter_id: str
    kind: str
    start: float
    end: float  # last interval of the anomaly (inclusive)


@dataclass
class Series:
    spec: MeterSpec
    readings: list[tuple[float, float | None, float]] = field(default_factory=list)  # ts, kW (None: missing), register


def _hour(ts: float) -> float:
    return CLOCK.hour_of_day(ts)


def _month(ts: float) -> int:
    return CLOCK.local(ts).tm_mon


def _weekday(ts: float) -> int:
    return CLOCK.local(ts).tm_wday


def make_meters(n: int, rng: random.Random) -> list[MeterSpec]:
    """A county's mix: 20% cut mine lines, 50% irrigation, 20% villages, 10% workshops."""
    meters = []
    for i in range(n):
        site = f"S{i % 8 + 1:02d}"
        r = i % 10
        if r < 2:
            meters.append(MeterSpec(f"SIM-{i:05d}", site, "mine_supply", True, 250))
        elif r < 7:
            pump = rng.choice([7.5, 11, 15, 18.5, 22])
            months = rng.choice([(3, 4, 5, 6, 7, 8), (4, 5, 6, 7, 8, 9)])
            meters.append(MeterSpec(f"SIM-{i:05d}", site, "irrigation", False, pump * 1.5,
                                    irrigation_months=months, irrigation_hours=(6, 20), pump_kw=pump))
        elif r < 9:
            meters.append(MeterSpec(f"SIM-{i:05d}", site, "village", False, rng.choice([100, 160, 200])))
        else:
            meters.append(MeterSpec(f"SIM-{i:05d}", site, "workshop", False, rng.choice([30, 50])))
    return meters


def normal_kw(spec: MeterSpec, ts: float, rng: random.Random, pumping: dict) -> float:
    hour = _hour(ts)
    if spec.expected_zero:
        return 0.0
    if spec.kind == "irrigation":
        in_plan = _month(ts) in spec.irrigation_months and spec.irrigation_hours[0] <= hour < spec.irrigation_hours[1]
        # Pumps run in blocks of hours, not independent intervals.
        if in_plan and rng.random() < (0.08 if not pumping.get(spec.meter_id) else 0.9):
            pumping[spec.meter_id] = True
            return spec.pump_kw * rng.uniform(0.85, 1.0)
        pumping[spec.meter_id] = False
        return rng.uniform(0.0, 0.08)
    if spec.kind == "village":
        daily = 0.18 + 0.1 * math.sin((hour - 7) / 24 * 2 * math.pi) + (0.2 if 18 <= hour < 22 else 0.0)
        weekend = 1.1 if _weekday(ts) >= 5 else 1.0
        return spec.rated_kw * daily * weekend * rng.uniform(0.88, 1.12)
    working = _weekday(ts) < 6 and 8 <= hour < 18
    return spec.rated_kw * (rng.uniform(0.45, 0.7) if working else rng.uniform(0.02, 0.06))


ANOMALY_KINDS = ("reconnection", "baseline_deviation", "irrigation_off_plan", "irrigation_overload",
                 "night_industrial_load", "register_jump_after_zeros", "meter_silent")


def _pick_kind(spec: MeterSpec, rng: random.Random) -> str | None:
    if spec.expected_zero:
        return "reconnection"
    options = {"irrigation": ["irrigation_off_plan", "irrigation_overload", "meter_silent"],
               "village": ["baseline_deviation", "night_industrial_load", "register_jump_after_zeros", "meter_silent"],
               "workshop": ["baseline_deviation", "night_industrial_load", "meter_silent"]}[spec.kind]
    return rng.choice(options)


def generate(meters: list[MeterSpec], days: int, start: float, seed: int, anomalies_per_meter: float = 0.0,
             warmup_days: int = 7, missing_rate: float = 0.002) -> tuple[list[Series], list[Anomaly]]:
    """Series for every meter; anomalies start after a warm-up, at most one at a time per meter."""
    rng = random.Random(seed)
    intervals = days * 96
    series, labels = [], []
    pumping: dict = {}
    for spec in meters:
        plan: dict[int, tuple[str, int]] = {}  # interval index -> (kind, end index)
        n_anomalies = int(anomalies_per_meter) + (1 if rng.random() < anomalies_per_meter % 1 else 0)
        for _ in range(n_anomalies):
            kind = _pick_kind(spec, rng)
            first = warmup_days * 96 + rng.randrange(max(1, intervals - warmup_days * 96 - 40))
            ts0 = start + first * STEP
            if kind in ("night_industrial_load", "irrigation_overload", "reconnection"):
                # Thefts happen at night: move the start to 22:00-02:00 local.
                day0 = first - int(_hour(ts0) * 4)
                first = day0 + 88 + rng.randrange(16)
                if kind == "irrigation_overload":
                    first = day0 + 96 + rng.randrange(8)  # 00:00-02:00, inside night hours
            length = {"reconnection": rng.randint(2, 24), "baseline_deviation": rng.randint(1, 3),
                      "irrigation_off_plan": rng.randint(3, 16), "irrigation_overload": rng.randint(4, 12),
                      "night_industrial_load": rng.randint(12, 20), "register_jump_after_zeros": rng.randint(5, 10),
                      "meter_silent": rng.randint(8, 24)}[kind]
            if kind == "irrigation_off_plan":
                # Off plan: at night (any season) or in daytime out of season.
                hour_now = int(_hour(start + first * STEP))
                if 6 <= hour_now < 20 and _month(start + first * STEP) in spec.irrigation_months:
                    first += (22 - hour_now) * 4
            if first + length >= intervals or any(first - 8 <= i <= first + length + 8 for i in plan):
                continue
            plan[first] = (kind, first + length - 1)
            labels.append(Anomaly(spec.meter_id, kind, start + first * STEP, start + (first + length - 1) * STEP))
        s = Series(spec)
        register = rng.uniform(1000, 50000)
        active: tuple[str, int] | None = None
        jump_pending = 0.0
        steady = rng.uniform(20, 60)
        for i in range(intervals):
            ts = start + i * STEP
            if i in plan:
                active = plan[i]
                steady = rng.uniform(25, 60)
            kind = active[0] if active else None
            kw = normal_kw(spec, ts, rng, pumping)
            reported: float | None = kw
            if kind == "reconnection":
                kw = reported = rng.uniform(5, 60)
            elif kind == "baseline_deviation":
                kw = reported = kw + max(spec.rated_kw * rng.uniform(0.5, 0.9), 30)
            elif kind == "irrigation_off_plan":
                kw = reported = spec.pump_kw * rng.uniform(0.85, 1.0)
            elif kind == "irrigation_overload":
                kw = reported = spec.pump_kw * rng.uniform(2.2, 3.0)
            elif kind == "night_industrial_load":
                kw = reported = kw + steady * rng.uniform(0.97, 1.03)
            elif kind == "register_jump_after_zeros":
                reported = 0.0  # bypassed: the meter reports zero, the register still counts
                jump_pending += kw * STEP / 3600
            elif kind == "meter_silent":
                reported = None
            register += kw * STEP / 3600
            if reported is not None and rng.random() < missing_rate and kind is None:
                reported = None  # ordinary missing data
            s.readings.append((ts, reported, register))
            if active and i == active[1]:
                active = None
        series.append(s)
    return series, labels
