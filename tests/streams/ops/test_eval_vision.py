"""``shaftwatch eval vision``: MOT ground truth read as documented, and the real pipeline
measured on crowds the project builds itself (tests/sim/crowd.py: real people cut out of
real footage, pasted at known sizes into real empty scenes)."""

from __future__ import annotations

import re
from dataclasses import replace

import cv2
import numpy as np
import pytest

from tests.helpers import MODEL, PEOPLE, make_config_dir
from tests.sim.crowd import VTEST

needs_shared = pytest.mark.skipif(not (MODEL.exists() and PEOPLE.exists()),
                                  reason="the offline model or the real footage of ../shared is missing")


def test_mot_ground_truth_is_read_with_what_to_ignore(tmp_path):
    from streams.ops.eval_vision import read_sequence

    (tmp_path / "img1").mkdir()
    (tmp_path / "gt").mkdir()
    for n in (1, 2, 10):
        cv2.imwrite(str(tmp_path / "img1" / f"{n}.jpg"), np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "gt" / "gt.txt").write_text(
        "1,1,10,20,30,90,1,1,1.0\n"      # a pedestrian
        "1,2,50,20,30,90,0,1,1.0\n"      # conf 0: an area to ignore
        "2,3,10,20,60,40,1,3,1.0\n"      # class 3 (a car): ignored
        "2,4,80,20,30,90,1,7,0.2\n"      # a static person, but 20 % visible: ignored
        "10,5,5,5,10,30\n")              # the six-column form of older MOT files
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nframeRate=25\n")
    seq = read_sequence(tmp_path)
    assert [p.name for p in seq.frames] == ["1.jpg", "2.jpg", "10.jpg"] and seq.fps == 25
    assert [(t.person_id, t.box, t.ignore) for t in seq.truth[1]] == [(1, (10, 20, 40, 110), False),
                                                                      (2, (50, 20, 80, 110), True)]
    assert [t.ignore for t in seq.truth[2]] == [True, True] and not seq.truth[10][0].ignore
    (tmp_path / "gt" / "gt.txt").write_text("1,1,10,20\n")
    with pytest.raises(ValueError, match=r"gt.txt:1: expected frame, id, left, top, width, height"):
        read_sequence(tmp_path)


@pytest.fixture(scope="module")
def night_crowd(tmp_path_factory):
    from tests.sim.crowd import write_sequence

    return write_sequence(tmp_path_factory.mktemp("crowd") / "night", "night", people=25, frames=8,
                          heights=(60, 320), seed=21)


def _row(output: str, name: str) -> list[str]:
    line = next(l for l in output.splitlines() if l.strip().startswith(name))
    return line.split()


@needs_shared
def test_eval_vision_measures_a_crowded_night_street_through_the_pipeline(night_crowd, tmp_path, capsys):
    """25 people, 60-320 px tall, walking across a real street at night in 1080p: through
    the shipped thresholds (night profile), people 100-300 px are found at recall and
    precision of 0.85 or more, and nearly every one of them is reported."""
    from streams.ops.cli import main

    config = make_config_dir(tmp_path / "configs")
    assert main(["--config", str(config), "eval", "vision", str(night_crowd), "--profile", "night"]) == 0
    out = capsys.readouterr().out
    band = _row(out, "100-300 px")  # name px people recall precision in-zones recall precision
    assert int(band[2]) >= 100 and float(band[3]) >= 0.85 and float(band[4]) >= 0.85
    reported, present = (int(n) for n in re.search(r"reported at least once: (\d+) of (\d+)", out).groups())
    assert present >= 20 and reported >= 0.85 * present
    assert "night profile" in out and "model passes 2.0" in out


@needs_shared
def test_the_crop_plan_finds_the_small_people_that_the_whole_frame_misses(night_crowd, shipped_night):
    from detectors.camera import VisionProfiles
    from detectors.objects import ObjectDetector
    from streams.ops.eval_vision import evaluate, read_sequence

    detector = ObjectDetector(MODEL)
    seq = read_sequence(night_crowd)
    planned = evaluate(seq, detector, VisionProfiles(shipped_night)).detected
    whole_only = replace(shipped_night, detector=replace(shipped_night.detector, passes_per_frame=1))
    whole = evaluate(seq, detector, VisionProfiles(whole_only)).detected
    small = [1, 2]  # 60-100 and 100-150 px: 13-33 px tall when the whole 1080p frame is shrunk to 416
    assert planned.recall(small) >= 0.8 and whole.recall(small) <= planned.recall(small) - 0.2


@pytest.fixture(scope="module")
def shipped_night():
    from streams.config import load_config
    from tests.helpers import REPO

    return load_config(REPO / "configs").thresholds.at_night().vision


@needs_shared
def test_eval_vision_prints_the_curves_for_calibrating(night_crowd, tmp_path, capsys):
    from streams.ops.cli import main

    config = make_config_dir(tmp_path / "configs")
    assert main(["--config", str(config), "eval", "vision", str(night_crowd), "--limit", "4", "--curve"]) == 0
    out = capsys.readouterr().out
    assert "precision/recall of single boxes by min_score" in out and "by tracker threshold" in out
    low, high = _row(out, "0.15"), _row(out, "0.60")  # the first table: recall falls, precision rises
    assert float(low[1]) >= float(high[1]) and float(low[2]) <= float(high[2])
    assert main(["--config", str(config), "eval", "vision", str(tmp_path)]) == 1  # not a MOT folder


@needs_shared
@pytest.mark.skipif(not VTEST.exists(), reason=f"{VTEST} is missing (make vtest installs Debian's opencv-doc)")
def test_eval_vision_on_a_real_street_at_one_frame_a_second(tmp_path, capsys):
    """Real footage (vtest.avi, walkers 40-150 px, one picture a second) with ground truth
    from background subtraction: the walkers are found and, followed from frame to frame
    although their boxes a second apart barely overlap, reported."""
    from streams.ops.cli import main
    from tests.sim.crowd import write_street_sequence

    street = write_street_sequence(tmp_path / "street")
    config = make_config_dir(tmp_path / "configs")
    assert main(["--config", str(config), "eval", "vision", str(street), "--limit", "40"]) == 0
    out = capsys.readouterr().out
    for name in ("60-100 px", "100-150 px"):  # reported: 0.72-0.90 here, 0.22-0.30 when tracks needed overlap
        row = _row(out, name)
        assert int(row[2]) >= 15 and float(row[3]) >= 0.9 and float(row[6]) >= 0.6
