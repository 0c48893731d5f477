"""``shaftwatch eval vision DIR``: person recall and precision by height, through the real
camera pipeline, on a county's own labelled footage.

DIR is a sequence in the MOT Challenge layout: pictures in ``DIR/img1/`` (in capture
order: natural sort of their names) and ground truth in ``DIR/gt/gt.txt``, one box per
line: ``frame, id, left, top, width, height[, conf, class, visibility]`` (frames count
from 1). Rows with conf 0 or a class other than 1 (pedestrian) or 7 (static person) mark
areas to ignore, as do people less visible than ``--min-visibility``: a box found there
(overlapping it at IoU 0.5, or half or more inside it) is neither a hit nor a false alarm.
``seqinfo.ini`` (frameRate) is read when present.

The frames go one by one through ``detectors.camera.VisionPipeline`` with the config's
thresholds (the day profile, or the night profile for frames from a camera in infrared,
or as chosen by ``--profile``) and, with ``--camera``, that camera's zones and masks;
without, one zone over the whole picture that counts people. Two stages are scored:

- **detected**: the boxes the detector returns for each frame (planner, model, merging,
  per-label ``min_score``);
- **reported**: the boxes of tracks that count in a zone in that frame (``min_frames``,
  the track's median score against ``threshold``, masks); ground truth here is the people
  whose feet are in a zone that counts people.

The first frame only teaches the motion gate its background and is not scored. A box
matches a person at IoU 0.5 or more, best scores first. ``--curve`` also prints the
precision/recall curve over the score thresholds, for choosing ``min_score`` and
``threshold`` (README, "Calibrating the thresholds").
"""

from __future__ import annotations

import configparser
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detectors.camera import CameraSpec, FrameIn, FrameOutcome, VisionPipeline, VisionProfiles, VisionRules
from detectors.geometry import point_in_polygon
from detectors.images import jpeg_size
from detectors.objects import ObjectDetector
from detectors.tracking import ZoneSpec
from streams.edge.camera_gateway import IMAGE_SUFFIXES, natural_key

BUCKETS = ((0, 60), (60, 100), (100, 150), (150, 300), (300, 100000))
BAND = (100, 300)  # the people the targets speak of: 100-300 px tall in 1080p
PERSON_CLASSES = {1, 7}  # MOT: pedestrian, static person
T0 = 1795000000.0


@dataclass
class Truth:
    person_id: int
    box: tuple[float, float, float, float]
    ignore: bool

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class Sequence:
    directory: Path
    frames: list[Path]
    truth: dict[int, list[Truth]]  # by frame number (1-based)
    fps: float


def read_sequence(directory: Path, min_visibility: float = 0.5) -> Sequence:
    images = directory / "img1"
    gt = directory / "gt" / "gt.txt"
    if not images.is_dir() or not gt.is_file():
        raise FileNotFoundError(f"{directory}: expected img1/ (pictures) and gt/gt.txt (MOT ground truth)")
    frames = sorted((p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not frames:
        raise FileNotFoundError(f"{images}: no pictures")
    truth: dict[int, list[Truth]] = {}
    for number, line in enumerate(gt.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.replace(" ", ",").split(",") if c.strip()]
        try:
            frame, pid = int(float(cells[0])), int(float(cells[1]))
            x, y, w, h = (float(c) for c in cells[2:6])
            conf = float(cells[6]) if len(cells) > 6 else 1.0
            cls = int(float(cells[7])) if len(cells) > 7 else 1
            visibility = float(cells[8]) if len(cells) > 8 else 1.0
        except (ValueError, IndexError):
            raise ValueError(f"{gt}:{number}: expected frame, id, left, top, width, height[, conf, class, "
                             f"visibility], got {line!r}") from None
        ignore = conf == 0 or cls not in PERSON_CLASSES or visibility < min_visibility
        truth.setdefault(frame, []).append(Truth(pid, (x, y, x + w, y + h), ignore))
    fps = 1.0
    info = directory / "seqinfo.ini"
    if info.is_file():
        parser = configparser.ConfigParser()
        parser.read(info)
        fps = parser.getfloat("Sequence", "frameRate", fallback=1.0) or 1.0
    return Sequence(directory, frames, truth, fps)


@dataclass
class Tally:
    """Hits and boxes per height bucket (a box counts in its person's bucket, a false one in its own)."""

    people: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    found: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    boxes: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    hits: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))  # boxes that are a person

    def add(self, boxes: list[tuple[float, tuple]], truth: list[Truth], threshold: float = 0.5) -> None:
        matched, box_hit, ignored = match(boxes, truth, threshold)
        for t, m in zip(truth, matched):
            if not t.ignore:
                k = bucket(t.height)
                self.people[k] += 1
                self.found[k] += m is not None
        for (score, box), person, skip in zip(boxes, box_hit, ignored):
            if skip:
                continue
            k = bucket(truth[person].height if person is not None else box[3] - box[1])
            self.boxes[k] += 1
            self.hits[k] += person is not None

    def recall(self, keys) -> float | None:
        people = sum(self.people[k] for k in keys)
        return sum(self.found[k] for k in keys) / people if people else None

    def precision(self, keys) -> float | None:
        boxes = sum(self.boxes[k] for k in keys)
        return sum(self.hits[k] for k in keys) / boxes if boxes else None


def bucket(height: float) -> int:
    return next(k for k, (lo, hi) in enumerate(BUCKETS) if lo <= height < hi) if height >= 0 else 0


def band_keys() -> list[int]:
    return [k for k, (lo, hi) in enumerate(BUCKETS) if lo >= BAND[0] and hi <= BAND[1]]


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match(boxes: list[tuple[float, tuple]], truth: list[Truth], threshold: float):
    """Greedy matching, best score first, to the free person with the highest IoU at or above
    ``threshold``; a box left over that overlaps an ignored person or area that much, or
    lies half or more inside it (one person of a group labelled as one area), is ignored.
    -> per person the box index or None; per box the person index or None; per box ignored."""
    matched: list[int | None] = [None] * len(truth)
    box_hit: list[int | None] = [None] * len(boxes)
    ignored = [False] * len(boxes)
    if not boxes or not truth:
        return matched, box_hit, ignored
    overlap = _iou_matrix(np.array([b for _, b in boxes], float), np.array([t.box for t in truth], float))
    for i in sorted(range(len(boxes)), key=lambda i: -boxes[i][0]):
        free = [j for j in range(len(truth)) if matched[j] is None and not truth[j].ignore
                and overlap[i, j] >= threshold]
        if free:
            j = max(free, key=lambda j: overlap[i, j])
            matched[j], box_hit[i] = i, j
        elif any(truth[j].ignore and (overlap[i, j] >= threshold or _inside(boxes[i][1], truth[j].box) >= 0.5)
                 for j in range(len(truth))):
            ignored[i] = True
    return matched, box_hit, ignored


def _inside(box, area) -> float:
    """The share of ``box`` that lies inside ``area``."""
    ix = max(0.0, min(box[2], area[2]) - max(box[0], area[0]))
    iy = max(0.0, min(box[3], area[3]) - max(box[1], area[1]))
    return ix * iy / max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))


@dataclass
class Evaluation:
    sequence: Sequence
    frames_scored: int = 0
    detected: Tally = field(default_factory=Tally)
    reported: Tally = field(default_factory=Tally)
    passes: list[int] = field(default_factory=list)
    wanted: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)  # pipeline time per frame that reached the detector
    infrared_frames: int = 0
    outcomes: list[tuple[int, FrameOutcome]] = field(default_factory=list)  # (frame number, outcome)
    zone_truth: dict[int, list[Truth]] = field(default_factory=dict)  # people outside person zones ignored
    people_in_zones: set[int] = field(default_factory=set)  # person ids seen in a zone in a scored frame
    people_reported: set[int] = field(default_factory=set)  # ... that a counted track matched at least once
    tracks: dict[int, list[int]] = field(default_factory=dict)  # counted person track -> [frames on a person, frames]


def whole_picture_zone(min_frames: int = ZoneSpec.min_frames) -> ZoneSpec:
    return ZoneSpec("picture", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], ("person",), min_frames)


def evaluate(sequence: Sequence, detector: ObjectDetector, profiles: VisionProfiles,
             camera: CameraSpec | None = None, limit: int | None = None) -> Evaluation:
    """Run the frames through a fresh pipeline, one at a time as a camera sends them."""
    camera = camera or CameraSpec("EVAL", "EVAL", [whole_picture_zone()])
    person_zones = [z for z in camera.zones if "person" in z.objects]
    pipeline = VisionPipeline([camera], detector, profiles)
    out = Evaluation(sequence)
    frames = sequence.frames[:limit] if limit else sequence.frames
    for k, path in enumerate(frames):
        number = k + 1
        frame = FrameIn(camera.camera_id, T0 + k / sequence.fps, number, path.read_bytes())
        started = time.perf_counter()
        _, errors, stats = pipeline.process([frame])
        elapsed = (time.perf_counter() - started) * 1000
        if errors:
            raise ValueError(f"{path}: {errors[0][1]}")
        if k == 0:
            continue  # the gate learns the background
        out.frames_scored += 1
        truth = sequence.truth.get(number, [])
        outcome = stats.outcomes[0] if stats.outcomes else None
        if outcome is not None:
            out.passes.append(outcome.passes)
            out.wanted.append(stats.wanted)
            out.ms.append(elapsed)
            out.infrared_frames += outcome.infrared
            out.outcomes.append((number, outcome))
        detections = [(d.score, d.box) for d in outcome.detections if d.label == "person"] if outcome else []
        out.detected.add(detections, truth)
        w, h = jpeg_size(frame.jpeg)
        out.zone_truth[number] = [t if any(_feet_in(t.box, z, w, h) for z in person_zones)
                                  else replace(t, ignore=True) for t in truth]
        zone_truth = out.zone_truth[number]
        boxes, ids = reported_boxes(outcome, 0.0), reported_track_ids(outcome)
        out.reported.add(boxes, zone_truth)
        out.people_in_zones |= {t.person_id for t in zone_truth if not t.ignore}
        matched, box_hit, ignored = match(boxes, zone_truth, 0.5)
        for track_id, person, skip in zip(ids, box_hit, ignored):
            if skip:
                continue
            tally = out.tracks.setdefault(track_id, [0, 0])
            tally[0] += person is not None
            tally[1] += 1
            if person is not None:
                out.people_reported.add(zone_truth[person].person_id)
    return out


def reported_track_ids(outcome: FrameOutcome | None) -> list[int]:
    """The track ids of ``reported_boxes(outcome, 0)``, in the same order."""
    ids = {box: track for zone, label, box, median, track in (outcome.counted if outcome else [])
           if label == "person"}
    return list(ids.values())


def reported_boxes(outcome: FrameOutcome | None, threshold: float) -> list[tuple[float, tuple]]:
    """Boxes of person tracks counted in a frame whose median score is ``threshold`` or more;
    a track counted in two zones is one box."""
    boxes = {box: (median, box) for zone, label, box, median, track in (outcome.counted if outcome else [])
             if label == "person" and median >= threshold}
    return list(boxes.values())


def _feet_in(box, zone: ZoneSpec, width: int, height: int) -> bool:
    return point_in_polygon((box[0] + box[2]) / 2 / width, box[3] / height, zone.polygon)


def format_report(ev: Evaluation, model: str, profile: str) -> str:
    seq = ev.sequence
    names = [f"{lo}-{hi}" if hi < 100000 else f">{lo}" for lo, hi in BUCKETS]
    names[0] = f"<{BUCKETS[0][1]}"
    lines = [f"{seq.directory}: {len(seq.frames)} frames, {ev.frames_scored} scored (the first teaches the "
             f"motion gate), model {model}, thresholds: {profile}"]
    if ev.ms:
        lines.append(f"per frame that reached the detector ({len(ev.ms)}): model passes {statistics.mean(ev.passes):.1f} "
                     f"(wanted {statistics.mean(ev.wanted):.1f}), pipeline {statistics.median(ev.ms):.0f} ms median; "
                     f"{ev.infrared_frames} seen as infrared")
    lines.append(f"{'person height':>15} {'people':>7} {'det. recall':>12} {'det. prec.':>11} "
                 f"{'in zones':>9} {'rep. recall':>12} {'rep. prec.':>11}")

    def fmt(v):
        return f"{v:.2f}" if v is not None else "-"

    rows = [(names[k], [k]) for k in range(len(BUCKETS))]
    rows += [(f"{BAND[0]}-{BAND[1]}", band_keys()), ("all", list(range(len(BUCKETS))))]
    for name, keys in rows:
        d, r = ev.detected, ev.reported
        lines.append(f"{name + ' px':>15} {sum(d.people[k] for k in keys):>7} {fmt(d.recall(keys)):>12} "
                     f"{fmt(d.precision(keys)):>11} {sum(r.people[k] for k in keys):>9} {fmt(r.recall(keys)):>12} "
                     f"{fmt(r.precision(keys)):>11}")
    true_tracks = sum(1 for hits, frames in ev.tracks.values() if hits * 2 > frames)
    lines.append(f"people in zones reported at least once: {len(ev.people_reported)} of {len(ev.people_in_zones)}; "
                 f"person tracks reported: {len(ev.tracks)}, {true_tracks} of them on a person most of the time "
                 f"(a track counts only after min_frames frames in a zone, so per-frame recall of the reported "
                 f"stage stays under the detected stage's)")
    return "\n".join(lines)


@dataclass
class CurvePoint:
    threshold: float
    band: tuple[float | None, float | None]  # recall, precision for people of 100-300 px
    all: tuple[float | None, float | None]


def _point(threshold: float, tally: Tally) -> CurvePoint:
    everything = range(len(BUCKETS))
    return CurvePoint(threshold, (tally.recall(band_keys()), tally.precision(band_keys())),
                      (tally.recall(everything), tally.precision(everything)))


def detection_curve(ev: Evaluation, thresholds: list[float]) -> list[CurvePoint]:
    """The detected stage as if ``min_score`` for person were each threshold in turn (from a
    run whose own ``min_score`` was at most the lowest of them)."""
    out = []
    for threshold in thresholds:
        tally = Tally()
        for number, outcome in ev.outcomes:
            boxes = [(d.score, d.box) for d in outcome.detections if d.label == "person" and d.score >= threshold]
            tally.add(boxes, ev.sequence.truth.get(number, []))
        out.append(_point(threshold, tally))
    return out


def track_curve(ev: Evaluation, thresholds: list[float]) -> list[CurvePoint]:
    """The reported stage as if the tracker's person ``threshold`` (on a track's median score)
    were each threshold in turn (from a run whose own threshold was 0)."""
    out = []
    for threshold in thresholds:
        tally = Tally()
        for number, outcome in ev.outcomes:
            tally.add(reported_boxes(outcome, threshold), ev.zone_truth[number])
        out.append(_point(threshold, tally))
    return out


def for_curves(rules: VisionRules, person_floor: float | None) -> VisionRules:
    """The same rules with every counted person track reported (tracker threshold 0) and,
    given a floor, every person box over it kept: what the curves are computed from."""
    tracker = replace(rules.tracker, threshold={**rules.tracker.threshold, "person": 0.0})
    detector = rules.detector
    if person_floor is not None:
        detector = replace(detector, min_score={**detector.min_score, "person": person_floor})
    return replace(rules, tracker=tracker, detector=detector)


def format_curve(title: str, points: list[CurvePoint]) -> str:
    def fmt(v):
        return f"{v:.2f}" if v is not None else "-"

    lines = [title, f"{'threshold':>10} {'recall 100-300':>15} {'precision':>10} {'recall all':>11} {'precision':>10}"]
    for p in points:
        lines.append(f"{p.threshold:>10.2f} {fmt(p.band[0]):>15} {fmt(p.band[1]):>10} {fmt(p.all[0]):>11} "
                     f"{fmt(p.all[1]):>10}")
    return "\n".join(lines)


def profiles_for(thresholds, profile: str) -> tuple[VisionProfiles, str]:
    """The vision rules to evaluate with, and words for them. ``auto``: the day's, and the
    night's for frames of a camera in infrared (a sequence has no local time to go by)."""
    day, night = thresholds.vision, thresholds.at_night().vision
    if profile == "day":
        return VisionProfiles(day), "day profile"
    if profile == "night":
        return VisionProfiles(night), "night profile"
    return VisionProfiles(day, night), "day profile, night profile for frames seen as infrared"


CURVE_THRESHOLDS = [round(0.15 + 0.05 * k, 2) for k in range(10)]


def run(cfg, directory: Path, camera_id: str | None = None, profile: str = "auto", min_visibility: float = 0.5,
        limit: int | None = None, curve: bool = False) -> str:
    """What ``shaftwatch eval vision`` prints."""
    from streams.config.cameras import camera_spec

    sequence = read_sequence(directory, min_visibility)
    camera = None
    if camera_id is not None:
        found = [c for c in cfg.cameras.cameras if c.id == camera_id]
        if not found:
            raise ValueError(f"unknown camera {camera_id!r} (not in cameras.yaml)")
        camera = camera_spec(found[0])
    profiles, words = profiles_for(cfg.thresholds, profile)
    detector = ObjectDetector(cfg.model_path, profiles.day.detector)
    ev = evaluate(sequence, detector, profiles, camera, limit)
    parts = [format_report(ev, Path(cfg.model_path).name, words)]
    if curve:
        floor = CURVE_THRESHOLDS[0]
        low = VisionProfiles(*(for_curves(r, floor) if r is not None else None
                               for r in (profiles.day, profiles.night)))
        parts.append(format_curve("\nprecision/recall of single boxes by min_score (person):",
                                  detection_curve(evaluate(sequence, detector, low, camera, limit), CURVE_THRESHOLDS)))
        tracks = VisionProfiles(*(for_curves(r, None) if r is not None else None
                                  for r in (profiles.day, profiles.night)))
        parts.append(format_curve("\nprecision/recall of reported tracks by tracker threshold (person, on the "
                                  "median score; min_score as configured):",
                                  track_curve(evaluate(sequence, detector, tracks, camera, limit), CURVE_THRESHOLDS)))
    return "\n".join(parts)
