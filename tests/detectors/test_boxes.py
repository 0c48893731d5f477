"""Merging the boxes that the crops of one frame found: one box per object."""

from __future__ import annotations

from detectors.boxes import Detection, expand_labels, kind_of, merge


def test_one_lorry_labelled_truck_and_bus_is_one_box_but_a_person_beside_a_car_stays():
    lorry = [Detection("truck", 0.6, (100, 100, 300, 220)), Detection("bus", 0.5, (105, 98, 305, 225))]
    kept = merge(lorry, 0.5, 0.6)
    assert [(d.label, d.score) for d in kept] == [("truck", 0.6)]
    beside = [Detection("car", 0.7, (100, 100, 300, 220)), Detection("person", 0.6, (110, 100, 170, 220))]
    assert sorted(d.label for d in merge(beside, 0.5, 0.6)) == ["car", "person"]


def test_a_body_cut_by_a_tile_edge_is_dropped_for_the_whole_body():
    whole = Detection("person", 0.55, (500, 300, 560, 480))  # from the mid squares
    upper_half = Detection("person", 0.7, (505, 300, 558, 390), cut=True)  # a tile ended at y=390
    (kept,) = merge([whole, upper_half], 0.5, 0.6)
    assert kept.box == whole.box and kept.score == 0.7


def test_two_halves_from_two_tiles_become_one_box():
    # a person 100 px wide across two tiles that overlap by 60 px (x 420-480): each sees most of them
    left = Detection("person", 0.5, (400, 300, 480, 500), cut=True)
    right = Detection("person", 0.45, (420, 302, 500, 501), cut=True)
    (kept,) = merge([left, right], 0.5, 0.6)
    assert kept.box == (400, 300, 500, 501)


def test_a_person_behind_another_is_not_merged_away():
    front = Detection("person", 0.8, (500, 300, 580, 520))
    behind = Detection("person", 0.5, (520, 320, 560, 420))  # mostly hidden, not cut by any tile
    assert len(merge([front, behind], 0.5, 0.6)) == 2


def test_vehicle_group():
    assert expand_labels(["person", "vehicle"]) == ("person", "car", "truck", "bus", "motorcycle")
    assert kind_of("bus") == kind_of("motorcycle") == "vehicle" and kind_of("bicycle") == "bicycle"
