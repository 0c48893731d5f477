"""The crop planner: which parts of which frames the model sees, at what scale, under one
budget of model passes per batch."""

from __future__ import annotations

import numpy as np

from detectors.crops import MID, NATIVE, WHOLE, FrameNeeds, levels, plan_batch

SIZE = 416  # the offline NanoDet's input
FAR = (1500, 500, 1535, 580)  # a person 80 px tall in a 1080p view: 17 px in the whole view, 31 px in mid
NEAR = (200, 300, 330, 700)  # 400 px tall: visible enough in the whole view


def plan(*frames: FrameNeeds, min_object_px: float = 36, wide_mid_px: int = 0):
    return plan_batch(list(frames), SIZE, 0.2, min_object_px, wide_mid_px)


def test_levels_of_common_frame_sizes():
    assert levels(1920, 1080, SIZE) == {WHOLE: SIZE / 1920, MID: SIZE / 1080, NATIVE: 1.0}
    assert levels(1280, 720, SIZE) == {WHOLE: SIZE / 1280, NATIVE: 1.0}  # too short for a mid level
    assert levels(768, 432, SIZE) == {WHOLE: SIZE / 768, NATIVE: 1.0}
    assert levels(400, 300, SIZE) == {WHOLE: 1.0}  # smaller than the model's input: never tiled


def test_a_frame_of_large_objects_is_seen_once_whole():
    (p,) = plan(FrameNeeds(1920, 1080, [NEAR], passes=2))
    assert [c.level for c in p.crops] == [WHOLE] and p.crops[0].box == (0, 0, 1920, 1080)


def test_small_objects_get_the_mid_squares_in_place_of_the_whole_view():
    (p,) = plan(FrameNeeds(1920, 1080, [FAR, NEAR], passes=2))
    assert [c.level for c in p.crops] == [MID, MID]
    covered = np.zeros((1080, 1920), bool)
    for c in p.crops:
        x0, y0, x1, y1 = c.box
        assert x1 - x0 == y1 - y0 == 1080 and abs(c.scale - SIZE / 1080) < 1e-9
        covered[y0:y1, x0:x1] = True
    assert covered.all()  # the two squares still show the whole frame
    (one,) = plan(FrameNeeds(1920, 1080, [FAR], passes=1))
    assert [c.box for c in one.crops] == [(840, 0, 1920, 1080)]  # only the square with motion in it...
    assert one.wanted == 1 + 1  # ...and it would have liked a native tile too (80 px x 0.385 = 31 px < 36)


def test_a_model_that_takes_wide_inputs_sees_both_squares_as_one_crop_at_their_cost():
    (p,) = plan(FrameNeeds(1920, 1080, [FAR, NEAR], passes=2), wide_mid_px=352)
    assert [(c.level, c.box, c.cost) for c in p.crops] == [(MID, (0, 0, 1920, 1080), 2)]
    assert abs(p.crops[0].scale - 352 / 1080) < 1e-9 and p.wanted == 2 + 1  # 626 x 352 model pixels
    (p,) = plan(FrameNeeds(1920, 1080, [FAR, NEAR], passes=3), wide_mid_px=352)
    assert [c.level for c in p.crops] == [MID, NATIVE]  # it costs the two squares' passes, no more
    (one,) = plan(FrameNeeds(1920, 1080, [FAR], passes=1), wide_mid_px=352)
    assert [(c.box, c.scale) for c in one.crops] == [((840, 0, 1920, 1080), SIZE / 1080)]  # one square: as before
    frames = [FrameNeeds(1920, 1080, [FAR, NEAR], passes=1.5) for _ in range(2)]
    assert [[c.level for c in p.crops] for p in plan(*frames, wide_mid_px=352)] == [[MID], [WHOLE]]
    # A frame so wide that its squares would not fit twice the input: squares, as before.
    (p,) = plan(FrameNeeds(3840, 1080, [(100, 500, 130, 580), (3700, 500, 3730, 580)], passes=2), wide_mid_px=352)
    assert [c.level for c in p.crops] == [MID] * 2 and all(c.box[2] - c.box[0] == 1080 for c in p.crops)
    # Someone 105 px tall: seen in two squares (40 px), too small in the wide view (34 px): a tile wanted.
    (p,) = plan(FrameNeeds(1920, 1080, [(1500, 500, 1540, 605), NEAR], passes=2), wide_mid_px=352)
    assert p.wanted == 2 + 1 and plan(FrameNeeds(1920, 1080, [(1500, 500, 1540, 605), NEAR], passes=2))[0].wanted == 2


def test_native_tiles_at_full_resolution_for_what_is_still_too_small():
    (p,) = plan(FrameNeeds(1920, 1080, [FAR], passes=3))
    assert [c.level for c in p.crops] == [MID, NATIVE]
    tile = p.crops[1]
    assert tile.scale == 1.0 and tile.box[2] - tile.box[0] == tile.box[3] - tile.box[1] == SIZE
    assert tile.box[0] <= FAR[0] and tile.box[2] >= FAR[2] and tile.box[1] <= FAR[1] and tile.box[3] >= FAR[3]
    # A small frame: the whole view, then a native tile around a distant person.
    (small,) = plan(FrameNeeds(768, 432, [(600, 50, 615, 90)], passes=2))
    assert [c.level for c in small.crops] == [WHOLE, NATIVE]


def test_the_budget_is_shared_by_the_frames_of_a_batch():
    crowd = [(x, 450, x + 30, 520) for x in range(50, 1900, 120)]  # 16 far people across a 1080p view
    quiet = [FrameNeeds(768, 432, [(100, 50, 300, 420)], passes=2) for _ in range(5)]  # one near person each
    busy = FrameNeeds(1920, 1080, crowd, passes=2)
    plans = plan(busy, *quiet)
    assert all([c.level for c in p.crops] == [WHOLE] for p in plans[1:])  # the quiet ones need one pass
    assert len(plans[0].crops) == 12 - 5  # the busy one gets the rest of 6 x 2 passes
    assert [c.level for c in plans[0].crops[:2]] == [MID, MID] and plans[0].crops[2].level == NATIVE
    assert plans[0].wanted > len(plans[0].crops)  # it wanted more than the budget had
    alone = plan(busy)[0]
    assert [c.level for c in alone.crops] == [MID, MID]  # on its own it keeps its 2


def test_a_short_budget_falls_back_to_the_whole_view_never_to_nothing():
    frames = [FrameNeeds(1920, 1080, [FAR, NEAR], passes=1) for _ in range(3)]  # each needs both squares
    assert [[c.level for c in p.crops] for p in plan(*frames)] == [[WHOLE]] * 3
    frames = [FrameNeeds(1920, 1080, [FAR, NEAR], passes=1.5) for _ in range(2)]
    assert [[c.level for c in p.crops] for p in plan(*frames)] == [[MID, MID], [WHOLE]]


def test_tiles_are_spread_over_a_group_of_far_people_most_useful_first():
    group = [(x, 400, x + 20, 450) for x in range(100, 1000, 60)]  # 15 people 50 px tall in a row
    (p,) = plan(FrameNeeds(1920, 1080, group, passes=20))
    natives = [c for c in p.crops if c.level == NATIVE]
    covered = np.zeros((1080, 1920), bool)
    for c in natives:
        x0, y0, x1, y1 = c.box
        covered[y0:y1, x0:x1] = True
    assert all(covered[y0:y1, x0:x1].all() for x0, y0, x1, y1 in group)
    assert len(natives) <= 4  # tiles over the row, not one per person


def test_small_blobs_of_a_larger_moving_object_are_not_taken_for_distant_people():
    person = (380, 0, 540, 374)  # a tracked person in a 768x432 view
    limbs = [(412, 320, 440, 344), (452, 264, 472, 288), (368, 120, 436, 248)]  # an arm, a hand, a shadow
    (p,) = plan(FrameNeeds(768, 432, [person, *limbs], passes=2))
    assert [c.level for c in p.crops] == [WHOLE]
    (p,) = plan(FrameNeeds(768, 432, [person, *limbs, (40, 60, 52, 90)], passes=2))  # and someone far off
    assert [c.level for c in p.crops] == [WHOLE, NATIVE] and p.crops[1].box[0] == 0
