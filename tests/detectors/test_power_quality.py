"""The power rules on a slice of a REAL plant's metered load (tests/detectors/data/, the
tuning plant of `make bench-power`) and on the seeded labelled county of tests/sim/power.py.
The full report on real series, with held-out meters, is `make bench-power`."""

from __future__ import annotations

import copy
import gzip
import random
from pathlib import Path

import pytest

from detectors.power import MeterSpec, PowerRules, detectable, new_state, observe
from detectors.timeofday import LocalClock
from tests.bench.power_quality import main

DATA = Path(__file__).parent / "data" / "pycity_metal_1_2010-01-04_16weeks.csv.gz"
CLOCK = LocalClock(timezone_offset_h=0.0)  # the series' own local time
T0 = CLOCK.epoch(2010, 1, 4)
STEP, DAY = 900, 96
RULES = PowerRules()


def plant(peak_kw: float) -> list[float]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        values = [float(line) for line in f if line[0].isdigit()]
    top = max(values)
    return [v / top * peak_kw for v in values]


def run(spec: MeterSpec, kw: list[float], thefts: dict[int, float]):
    """The clean series through the rules; at each theft start (interval -> added share of
    the night load) a copy of the state plays a 2-hour theft. Returns the clean findings
    after the warm-up, the delay of each theft found (None: missed), and the final state."""
    state, clean, delays = new_state(), [], []
    for i, v in enumerate(kw):
        if i in thefts:
            night_load = sorted(kw[i - 14 * DAY:i])[len(kw[i - 14 * DAY:i]) // 4]
            copy_ = copy.deepcopy(state)
            delay = None
            for j in range(i, i + 12):
                added = thefts[i] * night_load if j < i + 8 else 0.0
                if observe(spec, RULES, CLOCK, copy_, T0 + j * STEP, power_kw=kw[j] + added) and delay is None:
                    delay = j - i + 1
            delays.append(delay)
        found = observe(spec, RULES, CLOCK, state, T0 + i * STEP, power_kw=v) or []
        clean += [(i // DAY, f.kind) for f in found if i >= 28 * DAY]
    return clean, delays, state


def theft_nights(first_day: int, share: float) -> dict[int, float]:
    rng = random.Random(5)
    return {d * DAY + 88 + rng.randrange(16): share for d in range(first_day, 16 * 7 - 1, 2)}


@pytest.mark.parametrize("peak_kw", [20.0, 2000.0])
def test_a_real_plant_is_quiet_and_a_large_night_theft_is_found_fast(peak_kw):
    kw = plant(peak_kw)
    spec = MeterSpec("M-PLANT", "S01", "workshop", False, 1.25 * peak_kw)
    clean, delays, state = run(spec, kw, theft_nights(70, 0.8))
    assert clean == []  # 12 weeks of this plant's clean nights after the warm-up: nothing
    found = [d for d in delays if d is not None]
    assert len(found) >= 0.8 * len(delays) and sorted(found)[len(found) // 2] <= 3, delays
    # What this plant can see: its nights vary, so about +30 % of its load over 45 minutes.
    assert 0.15 < detectable(state, RULES)["sustained"] < 0.5


def test_the_same_plant_at_20_kw_and_2_mw_gives_the_same_findings():
    runs = []
    for peak in (20.0, 2000.0):
        spec = MeterSpec("M-PLANT", "S01", "workshop", False, 1.25 * peak)
        runs.append(run(spec, plant(peak), theft_nights(60, 0.5))[:2])
    assert runs[0] == runs[1]


def test_quality_on_the_seeded_county():
    report = main(meters=60, days=55, seed=7)
    kinds = report["kinds"]
    # Enough cut-off lines for the share below to mean something (19 with this seed).
    assert kinds["reconnection"]["labelled"] >= 15
    assert kinds["reconnection"]["within_2_intervals"] >= 0.95
    assert report["clean"]["per_1000_meter_days"] <= 1.0
    assert report["precision"] >= 0.95
    for kind, k in kinds.items():
        assert k["recall_any_rule"] >= 0.9, (kind, k)
