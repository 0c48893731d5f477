"""Config loading: the demo county is valid; every error names file, line, key and problem."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from streams.config import ConfigError, load_config
from streams.config.live import Thresholds
from tests.helpers import REPO, make_config_dir


def test_demo_county_is_complete():
    cfg = load_config(REPO / "configs")
    assert len(cfg.sites.sites) == 8
    assert len(cfg.sites.townships) == 3
    assert len(cfg.cameras.cameras) == 4
    assert all(cam.zones for cam in cfg.cameras.cameras)
    assert len(cfg.meters.meters) == 40
    kinds = {m.kind for m in cfg.meters.meters}
    assert {"mine_supply", "irrigation"} <= kinds
    assert sum(m.expected_zero for m in cfg.meters.meters) == 8
    assert len(cfg.fences.zones) == 5
    assert all(site.responsible.name for site in cfg.sites.sites)


def _problems(directory) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_file_line_and_key(tmp_path):
    d = make_config_dir(tmp_path)
    text = (d / "cameras.yaml").read_text().replace("    fps: 1\n", "    fsp: 1\n", 1)
    (d / "cameras.yaml").write_text(text)
    line = text.splitlines().index("    fsp: 1") + 1
    problems = _problems(d)
    assert problems == [f"{d / 'cameras.yaml'}:{line}: cameras.0.fsp: unknown key "
                        "(check the spelling; see the published config schema)"]


def test_bad_value_and_bad_reference_are_all_reported(tmp_path):
    d = make_config_dir(tmp_path, http={"port": 80})
    meters = (d / "meters.yaml").read_text().replace("site_id: S01, kind: mine_supply", "site_id: S42, kind: mine_supply")
    (d / "meters.yaml").write_text(meters)
    problems = _problems(d)
    assert any("shaftwatch.yaml" in p and "http.port" in p and "greater than or equal to 1024" in p for p in problems)
    # References are checked once every file is valid on its own.
    d2 = make_config_dir(tmp_path / "second")
    (d2 / "meters.yaml").write_text(meters)
    problems = _problems(d2)
    assert len(problems) == 1
    assert "meters.yaml:8: meters.0.site_id: site 'S42' is not in sites.yaml" in problems[0]


def test_model_rule_points_at_the_key(tmp_path):
    d = make_config_dir(tmp_path)
    text = (d / "meters.yaml").read_text()
    text = text.replace("  - {id: M-0001, site_id: S01, kind: mine_supply, expected_zero: true, rated_kw: 250}",
                        "  - {id: M-0001, site_id: S01, kind: irrigation, expected_zero: true, rated_kw: 250}")
    (d / "meters.yaml").write_text(text)
    (problem,) = _problems(d)
    assert "meters.yaml:8: meters.0.irrigation: an irrigation meter needs an irrigation plan" in problem


def test_invalid_yaml_and_missing_file(tmp_path):
    d = make_config_dir(tmp_path)
    (d / "fences.yaml").write_text("zones: [\n  - id: X\n")
    (d / "thresholds.yaml").unlink()
    problems = _problems(d)
    assert any(p.startswith(f"{d / 'fences.yaml'}:") and "not valid YAML" in p for p in problems)
    assert f"{d / 'thresholds.yaml'}: (top level): file is missing" in problems


def test_a_file_not_saved_as_utf8_is_named(tmp_path):
    """An editor saved sites.yaml as GBK (found by tests/streams/config/test_config_fuzz.py as
    UTF-16: it raised UnicodeDecodeError)."""
    d = make_config_dir(tmp_path)
    text = (d / "sites.yaml").read_text(encoding="utf-8")
    (d / "sites.yaml").write_bytes(text.encode("gbk"))
    [problem] = _problems(d)
    line = text.encode("utf-8")[:next(i for i, c in enumerate(text) if ord(c) > 127)].count(b"\n") + 1
    assert problem.startswith(f"{d / 'sites.yaml'}:{line}: (top level): not UTF-8 text") and "save the file as UTF-8" in problem


def test_polygon_outside_frame_is_refused(tmp_path):
    d = make_config_dir(tmp_path)
    text = (d / "cameras.yaml").read_text().replace("[0.95, 0.30]", "[1.95, 0.30]", 1)
    (d / "cameras.yaml").write_text(text)
    (problem,) = _problems(d)
    assert "cameras.0.zones.0.polygon" in problem and "outside 0..1" in problem


def test_config_check_command(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "streams.ops.cli", "--config", str(REPO / "configs"), "config", "check"],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "8 sites, 4 cameras, 40 meters, 5 fence zones" in ok.stdout
    d = make_config_dir(tmp_path, app={"partitions_typo": 3})
    bad = subprocess.run([sys.executable, "-m", "streams.ops.cli", "--config", str(d), "config", "check"],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2
    assert "shaftwatch.yaml" in bad.stderr and "app.partitions_typo: unknown key" in bad.stderr


NIGHT_PROFILE = """night_profile:
  vision:
    detector:
      min_score: {person: 0.25}
  fence:
    dwell_s: 600
"""


def _with_night_profile(directory, profile: str) -> None:
    """thresholds.yaml with its night profile (up to the next top-level key) replaced."""
    path = directory / "thresholds.yaml"
    text, count = re.subn(r"^night_profile:.*?(?=^\S)", profile, path.read_text(), count=1, flags=re.S | re.M)
    assert count == 1
    path.write_text(text)


def test_a_night_profile_changes_only_its_keys_and_only_by_night(tmp_path):
    d = make_config_dir(tmp_path)
    _with_night_profile(d, NIGHT_PROFILE)
    t = load_config(d).thresholds
    night, day = 1795456800.0, 1795500000.0  # 2026-11-24 02:00 and 14:00 China time (UTC+8)
    in_force = Thresholds(t)
    assert in_force.at(day) is t and t.fence.dwell_s == 300
    at_night = in_force.at(night)
    assert at_night is t.at_night() and at_night.fence.dwell_s == 600
    assert at_night.vision.detector.min_score["person"] == 0.25
    assert at_night.vision.detector.min_score["car"] == t.vision.detector.min_score["car"]  # merged, not replaced
    assert at_night.power == t.power


@pytest.mark.parametrize("profile, key, message", [
    ("night_profile:\n  vision:\n    detector:\n      min_scor: {person: 0.2}\n",
     "night_profile.vision.detector.min_scor", "unknown key"),
    ("night_profile:\n  fence:\n    dwell_s: soon\n", "night_profile.fence.dwell_s", "valid number"),
    ("night_profile:\n  night: {start: 3}\n", "night_profile.night", "a profile changes only power, fence"),
])
def test_a_bad_night_profile_names_its_key(tmp_path, profile, key, message):
    d = make_config_dir(tmp_path)
    _with_night_profile(d, profile)
    [problem] = _problems(d)
    lines = (d / "thresholds.yaml").read_text().splitlines()
    assert problem.startswith(f"{d / 'thresholds.yaml'}:") and f": {key}: " in problem and message in problem
    line = int(problem.split(":")[1])
    assert key.split(".")[-1] in lines[line - 1]
