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
from tests.helpers import CARS, MODEL, PEOPLE, jpegs

pytestmark = pytest.mark.skipif(not (MODEL.exists() and PEOPLE.exists() and CARS.exists()),
                                reason="the offline model or the real footage of ../shared is missing")
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
