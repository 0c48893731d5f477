"""Reports a patrol can bear, and vehicles counted whatever label the model gives them: the
tracker and the report rhythm fed with detections frame by frame, as the pipeline does."""

from __future__ import annotations

from detectors.boxes import Detection
from detectors.reports import ZoneReports
from detectors.tracking import CameraTracker, TrackerRules, ZoneSpec

W, H = 1920, 1080
ROAD = ZoneSpec("road", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)], ("vehicle",), min_frames=2)
SHAFT = ZoneSpec("shaft_mouth", [(0.0, 0.0), (1.0, 0.0), (1.0, 0.45), (0.0, 0.45)], ("person",), min_frames=2)


class Camera:
    """One camera's tracker and report rhythm, fed the way VisionPipeline feeds them."""

    def __init__(self, zones, interval=60.0):
        self.zones = zones
        self.tracker = CameraTracker(zones, [], TrackerRules(max_gap_s=3))
        self.reports = ZoneReports()
        self.interval = interval

    def frame(self, ts: float, detections: list[Detection]):
        counted = self.tracker.update(detections, ts, W, H)
        return self.reports.frame(self.zones, counted, self.tracker.is_stationary, ts, b"jpeg",
                                  lambda zone: zone.min_signal_interval_s or self.interval)


def car(x: float, label: str = "car", score: float = 0.6) -> Detection:
    return Detection(label, score, (x, 700, x + 200, 820))


def test_a_busy_road_is_reported_in_groups_not_car_by_car():
    """A car enters every 5 s and takes 35 s to cross (1 frame/s, 10 minutes): 120 cars. The
    first is reported at once; the others in one report a minute, none lost."""
    camera = Camera([ROAD])
    reports, seen = [], set()
    for t in range(600):
        cars = [car(-200 + 60 * (t - start)) for start in range(0, t + 1, 5) if 0 <= t - start < 35]
        for r in camera.frame(float(t), cars):
            reports.append((t, r))
            seen |= {tr.track_id for tr in r.tracks}
    assert reports[0][0] == 3  # the first car, at its second frame in the zone (min_frames 2)
    assert len(reports) <= 11  # 600 s / 60 s, plus the first (it was 120 cars)
    gaps = [b[0] - a[0] for a, b in zip(reports, reports[1:])]
    assert all(g >= 60 for g in gaps)
    # Every car counted (from its second frame in the zone, 3 s after it started) before the
    # last report is in a report; the later ones wait for the next.
    last = reports[-1][0]
    assert len(seen) == len([start for start in range(0, 600, 5) if start + 3 <= last])
    assert all(r.held_since is not None for _, r in reports[1:])  # held, then reported as a group


def test_a_shaft_zone_reports_its_first_person_at_once_while_the_road_is_busy():
    camera = Camera([ROAD, SHAFT])
    first_person = None
    for t in range(120):
        detections = [car(-200 + 60 * (t - start)) for start in range(0, t + 1, 5) if 0 <= t - start < 35]
        if t >= 30:  # a person walks along the shaft mouth from t = 30 s
            detections.append(Detection("person", 0.55, (900 + 5 * t, 300, 940 + 5 * t, 420)))
        for r in camera.frame(float(t), detections):
            if r.zone is SHAFT and first_person is None:
                first_person = t
    assert first_person == 31  # reported at its second frame, not held behind the road's traffic


def test_a_lorry_labelled_truck_then_bus_is_one_vehicle_in_a_vehicle_zone():
    camera = Camera([ROAD])
    labels = ["truck", "bus", "bus", "truck", "bus"]
    out = [camera.frame(float(t), [car(100 + 20 * t, label)]) for t, label in enumerate(labels)]
    assert len(camera.tracker.tracks) == 1
    (track,) = camera.tracker.tracks.values()
    assert track.label == "bus" and out[1] and out[1][0].tracks == [track]


def test_a_zone_that_asks_for_cars_only_ignores_a_bus():
    cars_only = ZoneSpec("car_park", ROAD.polygon, ("car",), min_frames=2)
    camera = Camera([cars_only])
    assert not any(camera.frame(float(t), [car(100 + 20 * t, "bus")]) for t in range(5))


def test_a_parked_car_is_not_reported_again_until_it_moves():
    camera = Camera([ROAD], interval=10)
    reports = [bool(camera.frame(float(t), [car(500)])) for t in range(40)]
    assert reports.count(True) == 1
    moved = [bool(camera.frame(float(t), [car(500 + 30 * (t - 40))])) for t in range(40, 60)]
    assert any(moved)


def test_a_far_walker_whose_boxes_never_overlap_at_1_frame_per_second_is_one_track():
    """A person 60 px tall walks across at 1.4 m/s: ~45 px a second, three times their own
    width, so two boxes a second apart never overlap. It is still one person, and it counts."""
    camera = Camera([ROAD.__class__("yard", [(0, 0), (1, 0), (1, 1), (0, 1)], ("person",), min_frames=3)])
    reports = [camera.frame(float(t), [Detection("person", 0.5, (300 + 45 * t, 600, 315 + 45 * t, 660))])
               for t in range(8)]
    assert len(camera.tracker.tracks) == 1 and sum(map(len, reports)) == 1
    # Two walkers crossing each other's path keep their own tracks.
    camera = Camera([ROAD])
    for t in range(6):
        camera.frame(float(t), [Detection("person", 0.5, (300 + 45 * t, 600, 315 + 45 * t, 660)),
                                Detection("person", 0.5, (700 - 45 * t, 610, 715 - 45 * t, 670))])
    assert sorted(len(tr.scores) for tr in camera.tracker.tracks.values()) == [6, 6]
