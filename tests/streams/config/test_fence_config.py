"""fences.yaml's allow-list file and history_from: what reaches the rules, and errors that
name file, line and key."""

from __future__ import annotations

import datetime

import pytest

from detectors.timeofday import LocalClock
from streams.config import ConfigError, load_config
from streams.config.meters import CONTRACT_EARLIEST
from streams.contract.records import EARLIEST_TS, ts_problems
from streams.worker.history import history_start
from tests.helpers import REPO, make_config_dir

ENTRY = ("  - {zone: FZ-JS-1, device: p1:0123456789abcdef0123456789abcdef, role: resident, added_by: 王建国, "
         "why: lives here, until: 2026-12-31}\n")


def _problems(directory) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def test_the_demo_allow_list_reaches_the_rules_with_its_dates():
    cfg = load_config(REPO / "configs")
    clock = LocalClock()
    allowed = cfg.allowlist.allow_list(clock)
    pid = cfg.allowlist.allowed[0].device
    assert allowed.allows("FZ-JS-1", pid, clock.epoch(2026, 12, 31, 23.9), clock)  # through its last day
    assert not allowed.allows("FZ-JS-1", pid, clock.epoch(2027, 1, 1, 0.1), clock)  # then it ends
    assert not allowed.allows("FZ-JS-2", pid, clock.epoch(2026, 6, 1), clock)  # in its zone only


@pytest.mark.parametrize("entry, key, message", [
    (ENTRY.replace("FZ-JS-1", "FZ-XX-9"), "allowed.0.zone", "zone 'FZ-XX-9' is not in fences.yaml"),
    (ENTRY.replace("p1:0123456789abcdef0123456789abcdef", "'139 1234 5678'"), "allowed.0.device", "pattern"),
    (ENTRY.replace("role: resident", "role: friend"), "allowed.0.role", "resident"),
    (ENTRY.replace(", until: 2026-12-31", ""), "allowed.0.until", "required"),
    (ENTRY.replace("why: lives here", "why: ''"), "allowed.0.why", "at least 1 character"),
])
def test_a_bad_allow_list_entry_names_file_line_and_key(tmp_path, entry, key, message):
    d = make_config_dir(tmp_path)
    (d / "allowlist.yaml").write_text("allowed:\n" + entry)
    problems = _problems(d)
    assert len(problems) == 1 and problems[0].startswith(f"{d / 'allowlist.yaml'}:2: {key}: "), problems
    assert message in problems[0], problems


def test_history_from_cannot_go_below_the_contract_floor(tmp_path):
    assert datetime.datetime.fromtimestamp(EARLIEST_TS, datetime.timezone.utc).date() == CONTRACT_EARLIEST
    assert ts_problems(EARLIEST_TS + 1) == [] and ts_problems(EARLIEST_TS - 1)  # 1990 back-fill passes the contract
    d = make_config_dir(tmp_path)
    text = (d / "meters.yaml").read_text().replace("history_from: 2000-01-01", "history_from: 1985-01-01", 1)
    (d / "meters.yaml").write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("history_from: 1985-01-01"))
    assert _problems(d) == [f"{d / 'meters.yaml'}:{line}: history_from: the record contract accepts nothing before "
                            "1990-01-01"]
    assert history_start(datetime.date(1995, 6, 1)) == 801_964_800.0
