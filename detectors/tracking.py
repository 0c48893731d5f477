"""Tracking objects across one camera's frames, and the zone rules on tracks.

A small tracker (cameras here sample at about 1 frame/s, where appearance models buy
little): a detection continues the track of the same kind (a person, or a vehicle of any
of its labels: a lorry is "truck" in one frame and "bus" in the next) whose box, moved on
by the track's own speed, overlaps it most; failing that, the nearest such track whose
box is of a similar size and no more than ``max_step`` of its own heights per second
away. At 1 frame/s a walker moves most of their height between frames, so the boxes of a
small person crossing the view often do not overlap at all: by overlap alone each frame
started a new track, and no far walker ever counted. The track's label is the one it was
given most often. A track counts in a zone when its footpoint is inside, for ``min_frames``
consecutive frames and ``loiter_s`` seconds; its score is the median over the track, so
one lucky box does not raise an alert; a track that stopped moving (a parked car) is not
reported again until it moves.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from pydantic import ConfigDict

from detectors.boxes import Detection, expand_labels, iou, kind_of
from detectors.geometry import Point, point_in_polygon


@dataclass(frozen=True)
class TrackerRules:
    """Tracking and zone thresholds (configs/thresholds.yaml, section ``vision.tracker``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    match_iou: float = 0.2  # at 1 frame/s people move: a low overlap still continues a track
    max_step: float = 1.2  # without overlap, a box this many track heights per second away may continue it
    max_gap_s: float = 10.0  # a track unseen this long has ended
    # Compared with the median score of a track's boxes. Person: from the measured curve of
    # track medians (README, "Calibrating the thresholds"); at 0.5 half of NanoDet-m's
    # correctly found people never counted.
    threshold: dict[str, float] = field(default_factory=lambda: {
        "person": 0.35, "car": 0.35, "truck": 0.35, "bus": 0.35, "motorcycle": 0.4, "bicycle": 0.4})
    stationary_iou: float = 0.85  # a reported track whose box still overlaps this much has not moved


@dataclass
class ZoneSpec:
    name: str
    polygon: list[Point]  # normalized
    objects: tuple[str, ...]  # labels, or groups of them ("vehicle": car, truck, bus, motorcycle)
    min_frames: int = 3  # consecutive frames in the zone before a track counts (Frigate's inertia)
    loiter_s: float = 0.0
    min_signal_interval_s: float | None = None  # this zone's report interval; None: the thresholds'

    def __post_init__(self) -> None:
        self.objects = expand_labels(self.objects)


@dataclass
class Track:
    track_id: int
    label: str
    box: tuple[float, float, float, float]
    first_ts: float
    last_ts: float
    scores: list[float] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box centre, px per second

    def predicted(self, ts: float) -> tuple[float, float, float, float]:
        """Where the box would be at ``ts`` at the track's speed."""
        dt = ts - self.last_ts
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return (self.box[0] + dx, self.box[1] + dy, self.box[2] + dx, self.box[3] + dy)
    zone_frames: dict[str, int] = field(default_factory=dict)  # consecutive frames in each zone
    zone_since: dict[str, float] = field(default_factory=dict)
    reported_box: tuple[float, float, float, float] | None = None

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores[-15:])

    @property
    def dwell_s(self) -> float:
        return self.last_ts - self.first_ts


class CameraTracker:
    def __init__(self, zones: list[ZoneSpec], object_masks: list[list[Point]], rules: TrackerRules = TrackerRules()):
        self.zones = zones
        self.object_masks = object_masks
        self.rules = rules
        self.tracks: dict[int, Track] = {}
        self.next_id = 1

    def update(self, detections: list[Detection], ts: float, width: int, height: int,
               motion: list[tuple[int, int, int, int]] | None = None) -> list[tuple[Track, ZoneSpec]]:
        """Take one frame's detections; return the (track, zone) pairs that count now.

        With ``motion`` (the gate's boxes of change), a new track starts only from a box
        that overlaps one: a person-like thing that never moves (a tripod, a post, a
        poster) is not an intruder, and a tile that happens to cover it once must not
        make it one. Boxes that continue a track need no motion (a person standing still)."""
        for tid in [t for t, tr in self.tracks.items() if ts - tr.last_ts > self.rules.max_gap_s]:
            del self.tracks[tid]
        kept = []
        for d in detections:
            fx, fy = d.footpoint
            if any(point_in_polygon(fx / width, fy / height, m) for m in self.object_masks):
                continue  # an object mask: a parked machine, a road outside the fence
            kept.append(d)
        counted = []
        for d, track in self._assign(sorted(kept, key=lambda d: -d.score), ts):
            if track is None:
                if motion is not None and not any(_overlaps(d.box, m) for m in motion):
                    continue
                track = Track(self.next_id, d.label, d.box, ts, ts)
                self.tracks[track.track_id] = track
                self.next_id += 1
            else:
                dt = max(1e-3, ts - track.last_ts)
                (cx0, cy0), (cx1, cy1) = _centre(track.box), _centre(d.box)
                step = ((cx1 - cx0) / dt, (cy1 - cy0) / dt)
                track.velocity = step if len(track.scores) < 2 else (
                    (track.velocity[0] + step[0]) / 2, (track.velocity[1] + step[1]) / 2)
                track.box, track.last_ts = d.box, ts
            track.scores.append(d.score)
            track.labels[d.label] += 1
            track.label = track.labels.most_common(1)[0][0]
            fx, fy = d.footpoint
            for zone in self.zones:
                inside = d.label in zone.objects and point_in_polygon(fx / width, fy / height, zone.polygon)
                if inside:
                    track.zone_frames[zone.name] = track.zone_frames.get(zone.name, 0) + 1
                    track.zone_since.setdefault(zone.name, ts)
                else:
                    track.zone_frames.pop(zone.name, None)
                    track.zone_since.pop(zone.name, None)
                if inside and self._counts(track, zone, ts):
                    counted.append((track, zone))
        return counted

    def _assign(self, detections: list[Detection], ts: float) -> list[tuple[Detection, Track | None]]:
        """Each detection with the track it continues (None: a new one), best scores first:
        by overlap with the tracks' predicted boxes, then by distance for those left."""
        free = set(self.tracks)
        pairs: dict[int, Track | None] = {}
        for k, d in enumerate(detections):
            best, best_iou = None, self.rules.match_iou
            for tid in free:
                t = self.tracks[tid]
                overlap = iou(t.predicted(ts), d.box)
                if kind_of(t.label) == kind_of(d.label) and overlap >= best_iou:
                    best, best_iou = tid, overlap
            if best is not None:
                free.discard(best)
                pairs[k] = self.tracks[best]
        for k, d in enumerate(detections):
            if k in pairs:
                continue
            best, best_distance = None, None
            for tid in free:
                t = self.tracks[tid]
                height, other = t.box[3] - t.box[1], d.box[3] - d.box[1]
                if kind_of(t.label) != kind_of(d.label) or not 0.67 <= other / max(1.0, height) <= 1.5:
                    continue
                (px, py), (cx, cy) = _centre(t.predicted(ts)), _centre(d.box)
                distance = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
                reach = self.rules.max_step * height * max(1.0, ts - t.last_ts)
                if distance <= reach and (best_distance is None or distance < best_distance):
                    best, best_distance = tid, distance
            if best is not None:
                free.discard(best)
            pairs[k] = self.tracks[best] if best is not None else None
        return [(d, pairs[k]) for k, d in enumerate(detections)]

    def _counts(self, track: Track, zone: ZoneSpec, ts: float) -> bool:
        if track.zone_frames.get(zone.name, 0) < zone.min_frames:
            return False
        if ts - track.zone_since.get(zone.name, ts) < zone.loiter_s:
            return False
        return track.median_score >= self.rules.threshold.get(track.label, 1.01)

    def is_stationary(self, track: Track) -> bool:
        return track.reported_box is not None and iou(track.reported_box, track.box) >= self.rules.stationary_iou


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _centre(box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
