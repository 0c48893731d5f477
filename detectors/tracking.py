"""Tracking objects across one camera's frames, and the zone rules on tracks.

A small IoU tracker (cameras here sample at about 1 frame/s, where appearance models
buy little): a detection continues the track of the same kind (a person, or a vehicle of
any of its labels: a lorry is "truck" in one frame and "bus" in the next) whose last box
overlaps it most; the track's label is the one it was given most often. A track counts in a zone when its footpoint is inside, for ``min_frames``
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
        unmatched = set(self.tracks)
        counted = []
        for d in sorted(kept, key=lambda d: -d.score):
            best, best_iou = None, self.rules.match_iou
            for tid in unmatched:
                t = self.tracks[tid]
                overlap = iou(t.box, d.box)
                if kind_of(t.label) == kind_of(d.label) and overlap >= best_iou:
                    best, best_iou = tid, overlap
            if best is None:
                if motion is not None and not any(_overlaps(d.box, m) for m in motion):
                    continue
                track = Track(self.next_id, d.label, d.box, ts, ts)
                self.tracks[track.track_id] = track
                self.next_id += 1
            else:
                unmatched.discard(best)
                track = self.tracks[best]
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
