"""meters.yaml's closure calendar and the power thresholds: what reaches the rules, and
errors that name file, line and key."""

from __future__ import annotations

import pytest

from detectors.power import closed
from detectors.timeofday import LocalClock
from streams.config import ConfigError, load_config
from tests.helpers import REPO, make_config_dir


def _problems(directory) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def test_the_calendar_reaches_each_meter_spec():
    cfg = load_config(REPO / "configs")
    specs = cfg.meters.specs()
    spring = specs["M-0001"].closed_dates
    assert "2026-02-15" in spring and "2026-02-23" in spring and "2026-02-24" not in spring
    # a closure for one meter only
    assert "2026-08-12" in specs["M-0038"].closed_dates and "2026-08-12" not in specs["M-0040"].closed_dates
    clock = LocalClock()
    assert closed(clock.epoch(2026, 2, 17, 3), specs["M-0033"], clock)
    assert not closed(clock.epoch(2026, 3, 17, 3), specs["M-0033"], clock)


@pytest.mark.parametrize("entry, key, message", [
    ("  - {date: 2026-13-01, why: x}\n", "calendar.0.date", "not a valid date: month must be in 1..12"),
    ("  - {start: 2026-03-05, end: 2026-03-01, why: x}\n", "calendar.0.end", "before start"),
    ("  - {start: 2026-03-05, why: x}\n", "calendar.0.end", "needs both"),
    ("  - {date: 2026-03-05, start: 2026-03-05, end: 2026-03-06, why: x}\n", "calendar.0", "either a date"),
    ("  - {date: 2026-03-05}\n", "calendar.0.why", "required"),
    ("  - {date: 2026-03-05, why: x, meters: [M-9999]}\n", "calendar.0.meters.0", "'M-9999' is not in this file"),
    ("  - {date: 2026-03-05, why: x, meter: [M-0001]}\n", "calendar.0.meter", "unknown key"),
])
def test_a_bad_closure_names_file_line_and_key(tmp_path, entry, key, message):
    d = make_config_dir(tmp_path)
    text = (d / "meters.yaml").read_text()
    text = text[:text.index("calendar:\n")] + "calendar:\n" + entry
    (d / "meters.yaml").write_text(text)
    line = text.splitlines().index(entry.rstrip("\n")) + 1
    problems = _problems(d)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{d / 'meters.yaml'}:{line}: {key}: ") and message in problems[0], problems


def test_a_removed_power_threshold_is_refused_by_name(tmp_path):
    d = make_config_dir(tmp_path)
    text = (d / "thresholds.yaml").read_text().replace("  reconnect_intervals: 1 ", "  night_load_excess_kw: 10 ", 1)
    (d / "thresholds.yaml").write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  night_load_excess_kw: 10 "))
    assert _problems(d) == [f"{d / 'thresholds.yaml'}:{line}: power.night_load_excess_kw: unknown key "
                            "(check the spelling; see the published config schema)"]
