"""The camera pipeline: motion gate -> detector on crops -> tracker and zones -> findings.

``VisionPipeline.process(frames)`` takes a batch of JPEG frames from any cameras and
returns what to report. Stage by stage:

1. every frame passes its camera's motion gate (a reduced grey decode; most stop here);
   the gate also says when the camera has switched to infrared;
2. frames with motion, or with objects still being tracked (a person standing still at a
   shaft mouth makes no motion but must keep counting), go to the detector; the planner
   shares one budget of model passes among all of them (``detectors.crops``);
3. each camera's tracker matches boxes to tracks and applies its zones;
4. each zone reports in its own rhythm (``detectors.reports``): the first new object at
   once, later ones grouped, objects that stay at most once per interval.

Which thresholds apply is decided per camera and frame (``VisionProfiles``): the night
profile by the frame's local time, or whenever the camera is in infrared mode.
Plain data in and out: no Kafka here. Timings per stage are returned for the benchmark,
and what was found in each frame for ``shaftwatch eval vision``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import ConfigDict

from detectors.boxes import Box, Detection
from detectors.geometry import Point, bounding_box
from detectors.images import decode, jpeg_size
from detectors.motion import MotionGate, MotionRules
from detectors.objects import DetectorRules, FrameJob, ObjectDetector
from detectors.reports import Report, ZoneReports
from detectors.timeofday import LocalClock
from detectors.tracking import CameraTracker, Track, TrackerRules, ZoneSpec


@dataclass(frozen=True)
class VisionRules:
    """configs/thresholds.yaml, section ``vision``."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    motion: MotionRules = MotionRules()
    detector: DetectorRules = DetectorRules()
    tracker: TrackerRules = TrackerRules()
    min_signal_interval_s: float = 60.0  # per camera zone: new objects within it are grouped


@dataclass(frozen=True)
class VisionProfiles:
    """The day's and the night's vision rules, and the clock that tells night."""

    day: VisionRules = VisionRules()
    night: VisionRules | None = None  # None: the same as by day
    clock: LocalClock | None = None  # None: night only when a camera is in infrared

    def at(self, ts: float, infrared: bool) -> VisionRules:
        if self.night is None:
            return self.day
        if infrared or (self.clock is not None and self.clock.is_night(ts)):
            return self.night
        return self.day


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
class FrameOutcome:
    """What the pipeline saw in one frame that reached the detector."""

    index: int  # in the batch
    camera_id: str
    captured_at: float
    detections: list[Detection]
    counted: list[tuple[str, str, tuple[float, float, float, float], float, int]]  # zone, label, box, median, track
    passes: int  # model passes spent on the frame
    infrared: bool


@dataclass
class BatchStats:
    frames: int = 0
    gated: int = 0
    passes: int = 0  # model passes, all frames together
    wanted: int = 0  # passes the frames would have liked (more when the budget ran out)
    decode_ms: float = 0.0  # decoding frames (as finely as their crops need) and cutting crops
    gate_ms: float = 0.0
    inference_ms: float = 0.0  # planning, the model, merging
    track_ms: float = 0.0
    outcomes: list[FrameOutcome] = field(default_factory=list)


class VisionPipeline:
    def __init__(self, cameras: list[CameraSpec], detector: ObjectDetector | None,
                 rules: VisionRules | VisionProfiles = VisionRules()):
        self.profiles = rules if isinstance(rules, VisionProfiles) else VisionProfiles(rules)
        self.detector = detector
        self.cameras = {c.camera_id: c for c in cameras}
        day = self.profiles.day
        self.gates = {c.camera_id: MotionGate([z.polygon for z in c.zones], c.motion_masks, day.motion)
                      for c in cameras}
        self.trackers = {c.camera_id: CameraTracker(c.zones, c.object_masks, day.tracker) for c in cameras}
        self.reports = {c.camera_id: ZoneReports() for c in cameras}
        self.infrared = {c.camera_id: False for c in cameras}  # per camera, as its gate last saw it
        self._zone_boxes = {c.camera_id: [bounding_box(z.polygon) for z in c.zones] for c in cameras}

    @property
    def rules(self) -> VisionRules:
        return self.profiles.day

    def use_rules(self, rules: VisionRules) -> None:
        """The same thresholds by day and by night from the next frame on."""
        self.use_profiles(VisionProfiles(rules))

    def use_profiles(self, profiles: VisionProfiles) -> None:
        """Other thresholds from the next frame on (a reload of thresholds.yaml). A gate
        whose scale changed restarts its background by itself: the next picture has
        another size."""
        self.profiles = profiles

    def rules_for(self, camera_id: str, ts: float) -> VisionRules:
        return self.profiles.at(ts, self.infrared[camera_id])

    def process(self, frames: list[FrameIn]) -> tuple[list[VisionFinding], list[tuple[int, str]], BatchStats]:
        """-> findings, (index, reason) of frames that could not be used, timings."""
        stats = BatchStats(frames=len(frames))
        errors: list[tuple[int, str]] = []
        findings: list[VisionFinding] = []
        selected: list[tuple[int, FrameIn, list[Box], list[Box], VisionRules]] = []  # +motion, tracked boxes
        t = time.perf_counter()
        for i, frame in enumerate(frames):
            if frame.camera_id not in self.cameras:
                errors.append((i, f"unknown camera {frame.camera_id!r}"))
                continue
            rules = self.rules_for(frame.camera_id, frame.captured_at)
            gate = self.gates[frame.camera_id]
            gate.rules = rules.motion
            try:
                result = gate.check(frame.jpeg)
            except ValueError as exc:
                errors.append((i, f"corrupt frame: {exc}"))
                continue
            if result.infrared is not None and result.infrared != self.infrared[frame.camera_id]:
                self.infrared[frame.camera_id] = result.infrared
                rules = self.rules_for(frame.camera_id, frame.captured_at)
            tracked = self._tracked_regions(frame, rules)
            if result.motion or tracked:
                selected.append((i, frame, result.regions, tracked, rules))
            else:
                findings += self._due_reports(frame, rules)
        stats.gate_ms = (time.perf_counter() - t) * 1000
        stats.gated = len(selected)
        if not selected or self.detector is None:
            return findings, errors, stats

        t = time.perf_counter()
        jobs = [FrameJob(frame.jpeg, motion + tracked, rules.detector) for _, frame, motion, tracked, rules in selected]
        results = self.detector.detect_frames(jobs)
        stats.decode_ms = self.detector.decode_ms
        stats.inference_ms = (time.perf_counter() - t) * 1000 - stats.decode_ms

        t = time.perf_counter()
        for (i, frame, motion, _, rules), found in zip(selected, results):
            if found.image is None:
                errors.append((i, "corrupt frame: full decode failed"))
                continue
            stats.passes += sum(c.cost for c in found.crops)
            stats.wanted += found.wanted
            findings += self._track(i, frame, rules, found.detections, motion, found.crops, stats)
        stats.track_ms = (time.perf_counter() - t) * 1000
        return findings, errors, stats

    def _tracked_regions(self, frame: FrameIn, rules: VisionRules) -> list[Box]:
        """Boxes of objects still tracked near the camera's zones: they are looked at again
        even without motion (a person standing still)."""
        tracks = [tr for tr in self.trackers[frame.camera_id].tracks.values()
                  if frame.captured_at - tr.last_ts <= rules.tracker.max_gap_s]
        if not tracks:
            return []
        size = jpeg_size(frame.jpeg)
        if size is None:
            return []
        w, h = size
        zones = [(x0 * w, y0 * h, x1 * w, y1 * h) for x0, y0, x1, y1 in self._zone_boxes[frame.camera_id]]
        out = []
        for tr in tracks:
            x0, y0, x1, y1 = tr.box
            if any(x0 <= z[2] and z[0] <= x1 and y0 <= z[3] and z[1] <= y1 for z in zones):
                out.append((int(x0), int(y0), int(x1), int(y1)))
        return out

    def _track(self, index: int, frame: FrameIn, rules: VisionRules, found: list[Detection], motion: list[Box],
               crops, stats: BatchStats) -> list[VisionFinding]:
        camera = self.cameras[frame.camera_id]
        tracker = self.trackers[frame.camera_id]
        tracker.rules = rules.tracker
        w, h = jpeg_size(frame.jpeg)
        counted = tracker.update(found, frame.captured_at, w, h, motion)
        boxes = [(z.name, t.label, t.box, t.median_score, t.track_id) for t, z in counted]
        passes = sum(c.cost for c in crops)
        stats.outcomes.append(FrameOutcome(index, camera.camera_id, frame.captured_at, found, boxes, passes,
                                           self.infrared[camera.camera_id]))
        reports = self.reports[camera.camera_id].frame(camera.zones, counted, tracker.is_stationary,
                                                       frame.captured_at, frame.jpeg,
                                                       lambda zone: self._interval(zone, rules))
        return [self._finding(camera, frame, r) for r in reports]

    def _due_reports(self, frame: FrameIn, rules: VisionRules) -> list[VisionFinding]:
        camera = self.cameras[frame.camera_id]
        reports = [self.reports[camera.camera_id].due(zone, frame.captured_at, self._interval(zone, rules))
                   for zone in camera.zones]
        return [self._finding(camera, frame, r) for r in reports if r is not None]

    @staticmethod
    def _interval(zone: ZoneSpec, rules: VisionRules) -> float:
        return zone.min_signal_interval_s if zone.min_signal_interval_s is not None else rules.min_signal_interval_s

    def _finding(self, camera: CameraSpec, frame: FrameIn, report: Report) -> VisionFinding:
        tracks: list[Track] = report.tracks
        labels: dict[str, int] = {}
        for t in tracks:
            labels[t.label] = labels.get(t.label, 0) + 1
        best = max(t.median_score for t in tracks)
        strength = min(1.0, 0.45 + 0.4 * best + 0.05 * (len(tracks) - 1))
        what = ", ".join(f"{n} {label}{'s' if n > 1 else ''}" for label, n in sorted(labels.items()))
        dwell = max(t.dwell_s for t in tracks)
        zone = report.zone
        summary = f"{what} at {camera.site_id} ({zone.name}, camera {camera.camera_id}), "
        if report.held_since is not None:
            summary += f"{len(report.new)} new in the last {frame.captured_at - report.held_since:.0f} s, "
        summary += f"seen for {dwell:.0f} s, best score {best:.2f}"
        image = decode(report.jpeg if report.jpeg is not None else frame.jpeg)
        snapshot = annotate(image, tracks, report.boxes, zone) if image is not None else b""
        return VisionFinding(camera.camera_id, camera.site_id, frame.captured_at, zone.name, labels,
                             [t.track_id for t in tracks], [t.track_id for t in report.new], dwell, round(best, 3),
                             round(strength, 3), summary, snapshot)


def annotate(image: np.ndarray, tracks: list[Track], boxes: dict[int, tuple], zone: ZoneSpec,
             quality: int = 85) -> bytes:
    """The evidence snapshot: the zone outlined, every reported object it shows boxed and labelled."""
    canvas = image.copy()
    h, w = canvas.shape[:2]
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in zone.polygon], np.int32)
    cv2.polylines(canvas, [pts], True, (0, 200, 255), 2)
    for t in tracks:
        if t.track_id not in boxes:
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[t.track_id])
        color = (0, 0, 255) if t.label == "person" else (255, 128, 0)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, 2)
        cv2.putText(canvas, f"{t.label} #{t.track_id} {t.median_score:.2f}", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""
