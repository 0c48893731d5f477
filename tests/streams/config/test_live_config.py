"""Config reload on plain files: a valid thresholds.yaml is applied, an invalid change is
refused with its file, line and key while the running config stays, and changes to the
other files are reported as needing a restart."""

from __future__ import annotations

import os

from streams.config import load_config
from streams.config.live import ConfigWatch
from tests.helpers import make_config_dir


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    stat = path.stat()  # a saved file gets a new mtime; make sure even a same-second edit shows
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_thresholds_reload_and_a_bad_edit_is_refused(tmp_path):
    d = make_config_dir(tmp_path)
    watch = ConfigWatch(load_config(d))
    first = watch.thresholds
    assert watch.check() is None  # nothing changed

    _edit(d / "thresholds.yaml", "  dwell_s: 300", "  dwell_s: 600")
    assert watch.check() == "applied"
    assert watch.thresholds.day.fence.dwell_s == 600 and first.day.fence.dwell_s == 300
    assert watch.status()["refused"] == [] and watch.check() is None

    _edit(d / "thresholds.yaml", "  dwell_s: 600", "  dwell_s: soon")
    assert watch.check() == "refused"
    assert watch.thresholds.day.fence.dwell_s == 600  # the running config stays in force
    [problem] = watch.status()["refused"]
    assert "thresholds.yaml:" in problem and "fence.dwell_s" in problem

    _edit(d / "thresholds.yaml", "  dwell_s: soon", "  dwell_s: 900")
    assert watch.check() == "applied" and watch.thresholds.day.fence.dwell_s == 900 and watch.status()["refused"] == []


def test_other_files_need_a_restart_and_are_not_applied(tmp_path):
    d = make_config_dir(tmp_path)
    watch = ConfigWatch(load_config(d))
    _edit(d / "fences.yaml", "老鸦沟 1号硐 3号硐 保护区", "老鸦沟 1号硐 3号硐 保护区 (重划)")  # a zone renamed
    _edit(d / "thresholds.yaml", "  dwell_s: 300", "  dwell_s: 450")
    assert watch.check() == "restart_needed"
    assert watch.status()["restart_needed"] == ["fences.yaml"]
    assert watch.thresholds.day.fence.dwell_s == 450  # thresholds still applied
    assert watch.running.fences == load_config(make_config_dir(tmp_path / "fresh")).fences
