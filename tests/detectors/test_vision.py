"""The camera pipeline on real footage (../shared/data) with the offline detector (../shared/models)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from detectors.camera import CameraSpec, FrameIn, VisionPipeline
from detectors.motion import MotionGate, MotionRules
from detectors.objects import ObjectDetector
from detectors.tracking import ZoneSpec
from tests.helpers import CARS, MODEL, PEOPLE, SHARED_FOOTAGE, jpegs

pytestmark = pytest.mark.skipif(not SHARED_FOOTAGE, reason="the offline model or the real footage of ../shared is missing")
T0 = 1795000000.0
SHAFT = ZoneSpec("shaft_mouth", [(0.05, 0.3), (0.95, 0.3), (0.95, 1.0), (0.05, 1.0)], ("person",), 2)
ROAD = ZoneSpec("haul_road", [(0, 0.05), (1, 0.05), (1, 1), (0, 1)], ("person", "car", "truck", "bus"), 2)


@pytest.fixture(scope="module")
def detector():
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return ObjectDetector(MODEL)


def run(pipeline, camera_id, frames):
    findings, errors, gated = [], [], []
    for k, jpeg in enumerate(frames):
        f, e, stats = pipeline.process([FrameIn(camera_id, T0 + k, k, jpeg)])
        findings += f
        errors += e
        gated.append(stats.gated)
    return findings, errors, gated


def test_person_walking_in_is_reported_once_with_a_snapshot(detector):
    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector)
    findings, errors, gated = run(pipeline, "CAM-P", jpegs(PEOPLE, [0] * 4 + list(range(240, 340, 10))))
    assert errors == [] and gated[:4] == [0, 0, 0, 0]  # the empty room: nothing passes the gate
    assert len(findings) == 1
    (f,) = findings
    assert f.labels == {"person": 1} and f.max_score >= 0.5 and f.zone == "shaft_mouth"
    snapshot = cv2.imdecode(np.frombuffer(f.snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert snapshot.shape == (432, 768, 3)


def test_vehicles_on_the_haul_road(detector):
    pipeline = VisionPipeline([CameraSpec("CAM-C", "S03", [ROAD])], detector)
    findings, _, _ = run(pipeline, "CAM-C", jpegs(CARS, [0] * 3 + list(range(50, 110, 6)) + list(range(200, 250, 6))))
    labels = [label for f in findings for label in f.labels]
    assert findings and set(labels) <= {"car", "bus", "truck"}


def test_static_scene_and_brightness_jump_raise_nothing(detector):
    still = cv2.imdecode(np.frombuffer(jpegs(PEOPLE, [0])[0], np.uint8), cv2.IMREAD_COLOR)
    rng = np.random.default_rng(1)
    frames = []
    for k in range(30):
        noisy = np.clip(still.astype(np.int16) + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
        if k >= 15:  # the IR switch: the whole view brightens at once
            noisy = cv2.convertScaleAbs(noisy, alpha=1.0, beta=70)
        frames.append(cv2.imencode(".jpg", noisy)[1].tobytes())
    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector)
    findings, errors, gated = run(pipeline, "CAM-P", frames)
    assert findings == [] and errors == [] and sum(gated) == 0


def test_slow_light_change_is_absorbed():
    gate = MotionGate([SHAFT.polygon], [], MotionRules())
    base = np.full((432, 768), 60, np.uint8)
    motions = [gate.check_grey(cv2.resize(np.clip(base + k, 0, 255).astype(np.uint8), (192, 108))).motion
               for k in range(0, 60, 2)]  # dusk: two grey levels a frame
    assert not any(motions)


def test_corrupt_frames_are_reported_not_raised(detector):
    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector)
    good = jpegs(PEOPLE, [0])[0]
    _, errors, _ = pipeline.process([FrameIn("CAM-P", T0, 1, good[:200]), FrameIn("CAM-X", T0, 1, good)])
    reasons = dict(errors)
    assert "corrupt frame" in reasons[0] and "unknown camera 'CAM-X'" in reasons[1]


def test_a_frame_that_fails_its_full_decode_is_reported_at_its_own_index(detector, monkeypatch):
    """The same frame twice in a batch (a camera gateway re-sending it): when its full
    decode fails, each copy is reported at its own index, so each is dead-lettered once and
    neither is counted as accepted. (Frames are compared by value: looking a frame up by
    equality found the first copy twice.)"""
    import detectors.camera as camera_module
    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector)
    *empty, person = jpegs(PEOPLE, [0, 0, 0, 300])
    run(pipeline, "CAM-P", empty)  # the gate learns the empty room
    full_decode = cv2.imdecode

    def failing_full_decode(buffer, flags):
        if flags == cv2.IMREAD_COLOR and buffer.tobytes() == person:
            return None
        return full_decode(buffer, flags)

    monkeypatch.setattr(camera_module.cv2, "imdecode", failing_full_decode)
    again = FrameIn("CAM-P", T0 + 10, 10, person)
    _, errors, stats = pipeline.process([again, again])
    assert stats.gated == 2  # both passed the gate (motion), then failed their full decode
    assert [i for i, _ in errors] == [0, 1] and all("full decode failed" in reason for _, reason in errors)


def test_new_thresholds_reach_the_running_pipeline(detector):
    """use_rules (a reload, or a night profile): a faint figure that the default gate sees
    is ignored once the gate's pixel threshold is raised, from the next frame on."""
    from detectors.camera import VisionRules

    def frames(start: int) -> list[FrameIn]:
        out = []
        for k in range(6):
            image = np.full((432, 768, 3), 60, np.uint8)
            if k >= 3:  # a dim shape 40 grey levels above the background walks into the zone
                image[250:400, 300 + 20 * k:380 + 20 * k] = 100
            out.append(FrameIn("CAM-P", T0 + start + k, start + k, cv2.imencode(".jpg", image)[1].tobytes()))
        return out

    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector)
    seen = [pipeline.process([f])[2].gated for f in frames(0)]
    assert sum(seen[3:]) > 0
    stricter = VisionRules(motion=MotionRules(pixel_threshold=60))
    pipeline.use_rules(stricter)
    fresh = VisionPipeline([CameraSpec("CAM-P", "S01", [SHAFT])], detector, stricter)
    for f in frames(100):
        assert pipeline.process([f])[2].gated == fresh.process([f])[2].gated == 0
    assert pipeline.gates["CAM-P"].rules.pixel_threshold == 60


# --------------------------------------------------------------------------- night, infrared, distance

WHOLE_VIEW = ZoneSpec("picture", [(0, 0), (1, 0), (1, 1), (0, 1)], ("person",), 2)


@pytest.fixture(scope="module")
def shipped():
    """The day's and night's vision rules of the shipped configs/thresholds.yaml."""
    from streams.config import load_config
    from tests.helpers import REPO

    t = load_config(REPO / "configs").thresholds
    return t.vision, t.at_night().vision


def sequence_frames(directory) -> list[bytes]:
    return [p.read_bytes() for p in sorted((directory / "img1").iterdir())]


def test_a_camera_that_switches_to_infrared_gets_the_night_rules_and_the_other_does_not(detector, shipped):
    """A dim figure (18 grey levels above the floor) walks in. The day's gate (25 levels) does
    not see it; the night's (15) does. One camera sends it in colour by day, the other in grey
    (infrared): only the infrared camera, switched to the night rules by its own gate, looks."""
    from detectors.camera import VisionProfiles
    day, night = shipped
    assert night.motion.pixel_threshold < 18 < day.motion.pixel_threshold

    def frames(camera_id: str, grey: bool) -> list[FrameIn]:
        out = []
        for k in range(8):
            image = np.full((432, 768, 3), 70, np.uint8)
            if not grey:
                image[:, :, 2] = 110  # a colour picture: a reddish floor under sodium light
            if k >= 3:
                image[250:400, 300 + 25 * k:360 + 25 * k] += 18
            out.append(FrameIn(camera_id, T0 + k, k, cv2.imencode(".jpg", image)[1].tobytes()))
        return out

    cameras = [CameraSpec("CAM-COLOUR", "S01", [SHAFT]), CameraSpec("CAM-IR", "S01", [SHAFT])]
    pipeline = VisionPipeline(cameras, detector, VisionProfiles(day, night))  # no clock: day by the clock
    gated = {"CAM-COLOUR": 0, "CAM-IR": 0}
    for colour, ir in zip(frames("CAM-COLOUR", grey=False), frames("CAM-IR", grey=True)):
        for frame in (colour, ir):
            gated[frame.camera_id] += pipeline.process([frame])[2].gated
    assert pipeline.infrared == {"CAM-COLOUR": False, "CAM-IR": True}
    assert pipeline.rules_for("CAM-IR", T0) is night and pipeline.rules_for("CAM-COLOUR", T0) is day
    assert gated["CAM-IR"] >= 3 and gated["CAM-COLOUR"] == 0
    # Dawn: the IR camera turns back to colour; its gate sees the whole view change and looks again.
    daylight = np.full((432, 768, 3), (120, 150, 190), np.uint8)
    for k in range(3):
        pipeline.process([FrameIn("CAM-IR", T0 + 20 + k, 20 + k, cv2.imencode(".jpg", daylight)[1].tobytes())])
    assert pipeline.infrared["CAM-IR"] is False and pipeline.rules_for("CAM-IR", T0) is day


@pytest.mark.parametrize("variant", ["night", "ir"])
def test_empty_night_scenes_raise_nothing_even_with_the_night_gate(detector, shipped, tmp_path, variant):
    """A real empty street at night and in infrared, with sensor noise, 20 frames, under the
    night rules in force all the time: no finding, no box."""
    from detectors.camera import VisionProfiles
    from tests.sim.crowd import write_sequence
    day, night = shipped
    jpegs_ = sequence_frames(write_sequence(tmp_path / variant, variant, people=0, frames=20, seed=5))
    pipeline = VisionPipeline([CameraSpec("CAM-N", "S01", [WHOLE_VIEW])], detector, VisionProfiles(night))
    findings, errors, _ = run(pipeline, "CAM-N", jpegs_)
    assert findings == [] and errors == []
    boxes = [d for k, jpeg in enumerate(jpegs_)
             for o in pipeline.process([FrameIn("CAM-N", T0 + 100 + k, 100 + k, jpeg)])[2].outcomes
             for d in o.detections]
    assert boxes == []


def test_distant_walkers_in_a_1080p_view_are_reported(detector, shipped, tmp_path):
    """Six real people, one at a time, 70 px tall, walking across a real 1080p street by day.
    The gate lets them through (at its old min_area_fraction of 0.0015 it let none of them
    through) and the mid squares and tiles find them (15 px tall in the whole view, far too
    small for the model): most of them are reported, on the person."""
    from detectors.boxes import iou
    from detectors.camera import VisionProfiles
    from tests.sim.crowd import write_sequence
    day, _ = shipped
    reported, old_gate_saw = 0, 0
    for seed in range(1, 7):
        seq = write_sequence(tmp_path / f"walker-{seed}", "day", people=1, frames=8, heights=(70, 70), seed=seed)
        truth = {}
        for line in (seq / "gt" / "gt.txt").read_text().split():
            frame, _, x, y, w, h = (float(v) for v in line.split(",")[:6])
            truth[int(frame) - 1] = (x, y, x + w, y + h)
        pipeline = VisionPipeline([CameraSpec("CAM-F", "S01", [WHOLE_VIEW])], detector, VisionProfiles(day))
        on_person = False
        for k, jpeg in enumerate(sequence_frames(seq)):
            for outcome in pipeline.process([FrameIn("CAM-F", T0 + k, k, jpeg)])[2].outcomes:
                on_person |= any(iou(box, truth[k]) >= 0.5 for _, _, box, _, _ in outcome.counted)
        reported += on_person
        old_gate = MotionGate([WHOLE_VIEW.polygon], [], MotionRules(min_area_fraction=0.0015))
        old_gate_saw += any(old_gate.check(j).motion for j in sequence_frames(seq))
    assert reported >= 4 and old_gate_saw == 0
