"""The camera pipeline: motion gate -> detector on regions -> tracker and zones -> findings.

``VisionPipeline.process(frames)`` takes a batch of JPEG frames from any cameras and
returns what to report. Stage by stage:

1. every frame passes its camera's motion gate (a reduced grey decode; most stop here);
2. frames with motion, or with objects still being tracked (a person standing still at a
   shaft mouth makes no motion but must keep counting), are decoded in full;
3. the crops of all those frames go through the detector in one batch;
4. each camera's tracker matches boxes to tracks and applies its zones;
5. a camera reports when a track that counts is new, or, while counted tracks stay and
   move, at most once per ``min_signal_interval_s``; parked objects are not re-reported.

Plain data in and out: no Kafka here. Timings per stage are returned for the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import ConfigDict

from detectors.geometry import Point
from detectors.motion import MotionGate, MotionRules
from detectors.objects import Box, Detection, DetectorRules, ObjectDetector
from detectors.tracking import CameraTracker, Track, TrackerRules, ZoneSpec


@dataclass(frozen=True)
class VisionRules:
    """configs/thresholds.yaml, section ``vision``."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    motion: MotionRules = MotionRules()
    detector: DetectorRules = DetectorRules()
    tracker: TrackerRules = TrackerRules()
    min_signal_interval_s: float = 60.0  # per camera, while the same objects stay


@dataclass
class CameraSpec:
    camera_id: str
    site_id: str
    zones: list[ZoneSpec]
    motion_masks: list[list[Point]] = field(default_factory=list)
    object_masks: list[list[Point]] = field(default_factory=list)


@dataclass
class FrameIn:
    camera_id: str
    captured_at: float
    seq: int
    jpeg: bytes


@dataclass
class VisionFinding:
    camera_id: str
    site_id: str
    ts: float
    zone: str
    labels: dict[str, int]
    track_ids: list[int]
    new_track_ids: list[int]
    dwell_s: float
    max_score: float
    strength: float
    summary: str
    snapshot: bytes  # annotated JPEG: boxes and the zone drawn


@dataclass
class BatchStats:
    frames: int = 0
    gated: int = 0
    decode_ms: float = 0.0
    gate_ms: float = 0.0
    inference_ms: float = 0.0
    track_ms: float = 0.0


class VisionPipeline:
    def __init__(self, cameras: list[CameraSpec], detector: ObjectDetector | None, rules: VisionRules = VisionRules()):
        self.rules = rules
        self.detector = detector
        self.cameras = {c.camera_id: c for c in cameras}
        self.gates = {c.camera_id: MotionGate([z.polygon for z in c.zones], c.motion_masks, rules.motion)
                      for c in cameras}
        self.trackers = {c.camera_id: CameraTracker(c.zones, c.object_masks, rules.tracker) for c in cameras}
        self.last_report: dict[str, float] = {}

    def use_rules(self, rules: VisionRules) -> None:
        """Other thresholds from the next frame on (a reload of thresholds.yaml, or night
        falling with a night profile). A gate whose scale changed restarts its background
        by itself: the next picture has another size."""
        if rules == self.rules:
            return
        for gate in self.gates.values():
            gate.rules = rules.motion
        for tracker in self.trackers.values():
            tracker.rules = rules.tracker
        if self.detector is not None:
            self.detector.rules = rules.detector
        self.rules = rules

    def process(self, frames: list[FrameIn]) -> tuple[list[VisionFinding], list[tuple[int, str]], BatchStats]:
        """-> findings, (index, reason) of frames that could not be used, timings."""
        stats = BatchStats(frames=len(frames))
        errors: list[tuple[int, str]] = []
        selected: list[tuple[int, FrameIn, list[Box]]] = []  # index in the batch, frame, regions
        t = time.perf_counter()
        for i, frame in enumerate(frames):
            if frame.camera_id not in self.cameras:
                errors.append((i, f"unknown camera {frame.camera_id!r}"))
                continue
            try:
                result = self.gates[frame.camera_id].check(frame.jpeg)
            except ValueError as exc:
                errors.append((i, f"corrupt frame: {exc}"))
                continue
            tracked = [tuple(int(v) for v in tr.box) for tr in self.trackers[frame.camera_id].tracks.values()
                       if frame.captured_at - tr.last_ts <= self.rules.tracker.max_gap_s]
            if result.motion or tracked:
                selected.append((i, frame, result.regions + tracked))
        stats.gate_ms = (time.perf_counter() - t) * 1000
        stats.gated = len(selected)
        if not selected or self.detector is None:
            return [], errors, stats

        t = time.perf_counter()
        images, regions, usable = [], [], []
        for i, frame, frame_regions in selected:
            image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                errors.append((i, "corrupt frame: full decode failed"))
                continue
            images.append(image)
            regions.append(frame_regions)
            usable.append(frame)
        stats.decode_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        detections = self.detector.detect_regions(images, regions)
        stats.inference_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        findings = []
        for frame, image, found in zip(usable, images, detections):
            finding = self._track(frame, image, found)
            if finding is not None:
                findings.append(finding)
        stats.track_ms = (time.perf_counter() - t) * 1000
        return findings, errors, stats

    def _track(self, frame: FrameIn, image: np.ndarray, found: list[Detection]) -> VisionFinding | None:
        camera = self.cameras[frame.camera_id]
        tracker = self.trackers[frame.camera_id]
        h, w = image.shape[:2]
        counted = tracker.update(found, frame.captured_at, w, h)
        if not counted:
            return None
        moving = [(t, z) for t, z in counted if not tracker.is_stationary(t)]
        new = [t for t, _ in moving if t.reported_box is None]
        last = self.last_report.get(frame.camera_id)
        due = last is None or frame.captured_at - last >= self.rules.min_signal_interval_s
        if not new and not (moving and due):
            return None
        # Report one zone per frame: the zone of the first new object, else of the first moving one.
        zone = next(z for t, z in moving if t is new[0]) if new else moving[0][1]
        tracks: list[Track] = [t for t, z in moving if z is zone]
        for t in tracks:
            t.reported_box = t.box
        self.last_report[frame.camera_id] = frame.captured_at
        labels: dict[str, int] = {}
        for t in tracks:
            labels[t.label] = labels.get(t.label, 0) + 1
        best = max(t.median_score for t in tracks)
        strength = min(1.0, 0.45 + 0.4 * best + 0.05 * (len(tracks) - 1))
        what = ", ".join(f"{n} {label}{'s' if n > 1 else ''}" for label, n in sorted(labels.items()))
        dwell = max(t.dwell_s for t in tracks)
        summary = (f"{what} at {camera.site_id} ({zone.name}, camera {camera.camera_id}), "
                   f"seen for {dwell:.0f} s, best score {best:.2f}")
        return VisionFinding(camera.camera_id, camera.site_id, frame.captured_at, zone.name, labels,
                             [t.track_id for t in tracks], [t.track_id for t in new], dwell, round(best, 3),
                             round(strength, 3), summary, annotate(image, tracks, zone))


def annotate(image: np.ndarray, tracks: list[Track], zone: ZoneSpec, quality: int = 85) -> bytes:
    """The evidence snapshot: the zone outlined, every reported object boxed and labelled."""
    canvas = image.copy()
    h, w = canvas.shape[:2]
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in zone.polygon], np.int32)
    cv2.polylines(canvas, [pts], True, (0, 200, 255), 2)
    for t in tracks:
        x0, y0, x1, y1 = (int(v) for v in t.box)
        color = (0, 0, 255) if t.label == "person" else (255, 128, 0)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, 2)
        cv2.putText(canvas, f"{t.label} #{t.track_id} {t.median_score:.2f}", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""
