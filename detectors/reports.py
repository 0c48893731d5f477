"""When a camera zone reports: findings a patrol can bear.

A busy road must not raise a finding per passing car (a measured 33 findings in 31 s),
while a shaft zone must report its first person at once. So each zone of each camera
keeps its own rhythm, ``min_signal_interval_s`` (from thresholds.yaml, or the zone's own):

- the first new object after a quiet interval is reported **at once**;
- new objects that come within the interval after a report are **held**, and reported
  together in one finding when the interval ends, even if they have left by then (its
  snapshot is the frame that showed the last of them);
- objects that stay and keep moving are reported again at most once per interval;
  an object that stopped moving (a parked car) is not reported again until it moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.tracking import Track, ZoneSpec


@dataclass
class Report:
    zone: ZoneSpec
    tracks: list[Track]  # every object in the report
    new: list[Track]  # those never reported before
    jpeg: bytes | None  # the frame to draw on; None: the frame being processed
    boxes: dict[int, tuple[float, float, float, float]]  # track id -> box to draw on that frame
    held_since: float | None = None  # when the first held object came, for a burst


@dataclass
class _ZoneState:
    last_report: float | None = None
    held: dict[int, Track] = field(default_factory=dict)
    held_since: float | None = None
    held_jpeg: bytes | None = None
    held_boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


class ZoneReports:
    """One camera's report rhythm, zone by zone."""

    def __init__(self) -> None:
        self.zones: dict[str, _ZoneState] = {}

    def frame(self, zones: list[ZoneSpec], counted: list[tuple[Track, ZoneSpec]], stationary, ts: float,
              jpeg: bytes, interval_of) -> list[Report]:
        """One frame of the camera, after its tracker: the reports due now, zone by zone.
        ``stationary(track)`` says whether a reported track has stopped moving,
        ``interval_of(zone)`` the zone's report interval."""
        reports = []
        for zone in zones:
            moving = [t for t, z in counted if z is zone and not stationary(t)]
            if moving:
                report = self.observe(zone, ts, moving, jpeg, interval_of(zone))
            else:
                report = self.due(zone, ts, interval_of(zone))
            if report is not None:
                reports.append(report)
        return reports

    def observe(self, zone: ZoneSpec, ts: float, moving: list[Track], jpeg: bytes,
                interval: float) -> Report | None:
        """A frame in which these counted, moving tracks are in the zone."""
        state = self.zones.setdefault(zone.name, _ZoneState())
        quiet = state.last_report is None or ts - state.last_report >= interval
        if quiet and (moving or state.held):
            return self._report(state, zone, ts, moving, None)
        new = [t for t in moving if t.reported_box is None and t.track_id not in state.held]
        if new:
            if not state.held:
                state.held_since = ts
            for t in new:
                state.held[t.track_id] = t
            # The snapshot of a held burst: this frame, with every held object it shows.
            state.held_jpeg = jpeg
            state.held_boxes = {tid: t.box for tid, t in state.held.items() if t.last_ts == ts}
        return None

    def due(self, zone: ZoneSpec, ts: float, interval: float) -> Report | None:
        """A frame without counted objects in the zone: held objects whose interval has
        ended are reported now."""
        state = self.zones.get(zone.name)
        if state is None or not state.held or ts - (state.last_report or ts) < interval:
            return None
        return self._report(state, zone, ts, [], state.held_jpeg)

    def _report(self, state: _ZoneState, zone: ZoneSpec, ts: float, moving: list[Track],
                jpeg: bytes | None) -> Report:
        tracks = list(state.held.values()) + [t for t in moving if t.track_id not in state.held]
        new = [t for t in tracks if t.reported_box is None]
        if jpeg is None:
            boxes = {t.track_id: t.box for t in moving}
        else:
            boxes = dict(state.held_boxes)
        report = Report(zone, tracks, new, jpeg, boxes, state.held_since if state.held else None)
        for t in tracks:
            t.reported_box = t.box
        state.last_report = ts
        state.held, state.held_boxes, state.held_jpeg, state.held_since = {}, {}, None, None
        return report
