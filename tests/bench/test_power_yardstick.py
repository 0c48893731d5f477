"""The power yardstick of `make bench-power` (tests/bench/power_yardstick.py) on nights whose
answer is known: it must see a small theft on a steady meter and must not on a meter whose
own nights rise as much as the theft."""

from __future__ import annotations

import numpy as np

from tests.bench.power_yardstick import ROW, theft_gain, yardstick

KINDS = np.array(["mon", "mid", "mid", "mid", "fri", "sat", "sun"])


def meter(nights: int, rng: np.random.Generator, restless: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = 100 + rng.normal(0, 1, size=(nights, ROW))  # 100 kW, 1 kW of noise
    if restless:
        for row in rows:  # each night its own level, and a machine that starts at some time
            row *= rng.uniform(0.8, 1.2)
            row[rng.integers(8, 36):] += 30
    return rows, np.full(nights, 100.0), KINDS[np.arange(nights) % 7]


def test_a_theft_adds_to_the_level_and_the_step_as_it_enters_the_windows():
    assert theft_gain(10, 10, "level") == 1 / 3 and theft_gain(10, 12, "level") == 1.0
    assert theft_gain(10, 12, "step") == 1.0  # all 3 recent readings carry it, none of the 4 before
    assert theft_gain(10, 16, "step") == 0.0  # now the 4 before carry it too


def test_a_steady_meter_shows_a_ten_percent_theft_within_three_intervals():
    rows, loads, kinds = meter(200, np.random.default_rng(1), restless=False)
    judged, best = yardstick(rows, loads, kinds, allowed_false=0)
    # Judged: past the 28-night warm-up, once 8 nights of the night's own kind are behind it.
    assert judged == sum(1 for n in range(28, 200) if (kinds[:n] == kinds[n]).sum() >= 8)
    assert best[0.10]["by3"][0] > 0.9 and best[0.20]["by3"][0] == 1.0


def test_a_meter_whose_nights_rise_by_thirty_percent_hides_a_twenty_percent_theft():
    _, best = yardstick(*meter(200, np.random.default_rng(1), restless=True), allowed_false=0)
    assert best[0.20]["in2h"][1] < 0.3
    assert best[0.40]["by3"][0] > best[0.20]["by3"][0]
