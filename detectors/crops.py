"""Which crops of which frames the model sees: a multi-scale plan under one budget per batch.

A detector with a fixed input (416 px for the offline NanoDet) finds an object only when it
is large enough *in the model's input*: about 36 px tall for NanoDet-m (``min_object_px``,
measured, see the README). Shrinking a whole 1080p frame to 416 px scales it by 0.22, so
a person 100 px tall becomes 22 px and is often missed. Cutting the frame into native-
resolution tiles finds them, but covering a 1080p frame takes 18 tiles, and a person
taller than a tile is then found only in pieces. So a frame is looked at on levels, each
finer than the one before:

- **whole**: the whole frame at the model's size: near and large objects;
- **mid** (wide frames only: at least 1.5 times as wide as tall and twice the model's
  input tall, e.g. 1080p): squares as tall as the frame, two for 16:9, at ``size / height``
  (0.385 for 1080p, people from ~95 px up). Together they still show the whole frame,
  every object up to the frame's height in one piece or in two halves that the merge
  joins; so when a frame has objects too small for the whole view, the mid squares that
  hold its regions *replace* the whole view (measured: the whole view then adds no person
  found and only duplicates, see the README). A detector that takes wide inputs (a
  re-shaped model, ``detectors.model_shapes``) sees neighbouring squares as one wide crop
  instead, ``wide_mid_px`` tall (``mid_view_px``, 352: a 1080p frame at 0.326, 626 × 352
  model pixels, a third less than two squares, no person cut in two, people from ~110 px
  up); it costs the budget what the squares would;
- **native**: tiles of the model's input size at full resolution, for what is smaller.

Finer levels are spent only where they are needed: on the regions that matter (motion
inside the camera's zones, and boxes of objects being tracked there) that are too small
at the coarser level for the model to see (a region's height times the level's scale
under ``min_object_px``) and are not mostly inside a larger region (the blobs of a moving
arm or a shadow inside the box of a tracked person are not a distant person). Every model pass costs about the same, so a batch has one budget
of passes (``passes_per_frame`` times its frames): first every frame's base view (the
mid squares it needs, or the whole frame where the budget does not stretch that far),
then the native tiles of all frames taken in turn, each frame's most useful first, until
the budget is spent. A camera watching a crowd may use the passes that quiet cameras of
the same batch did not need, and no frame is ever left unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detectors.boxes import Box

WHOLE, MID, NATIVE = "whole", "mid", "native"


@dataclass(frozen=True)
class Crop:
    level: str
    box: Box  # the part of the frame it shows, in frame pixels
    scale: float  # model-input pixels per frame pixel
    cost: int = 1  # model passes of the budget it takes (a wide mid view: the squares it replaces)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the image the model is given for this crop, at its scale."""
        x0, y0, x1, y1 = self.box
        return max(1, round((x1 - x0) * self.scale)), max(1, round((y1 - y0) * self.scale))


@dataclass
class FrameNeeds:
    """What the planner knows of one frame before it is decoded."""

    width: int
    height: int
    regions: list[Box]  # frame pixels: motion and tracked objects, inside the zones
    passes: float  # this frame's share of the batch budget (its rules' passes_per_frame)


@dataclass
class FramePlan:
    crops: list[Crop] = field(default_factory=list)
    wanted: int = 0  # crops the frame needed: more than it got when the budget ran out

    @property
    def finest_scale(self) -> float:
        return max(c.scale for c in self.crops)


@dataclass
class _Options:
    """One frame's choices: its whole view, the mid squares that would replace it, and
    native tiles (most useful first) for what is too small in the mid squares or, when
    the frame has none, in the whole view."""

    whole: Crop
    mid: list[Crop]
    native_after_mid: list[Crop]
    native_after_whole: list[Crop]


def _axis(start: int, stop: int, side: int, overlap: float, limit: int) -> list[int]:
    """Tile origins along one axis covering [start, stop) with tiles of ``side``, within [0, limit)."""
    if limit <= side:
        return [0]
    length = max(stop - start, side)
    centre = (start + stop) / 2
    lo = int(min(max(0, centre - length / 2), limit - length))
    hi = lo + length
    count = max(1, math.ceil((hi - lo - side) / (side * (1 - overlap)) - 1e-9) + 1)
    if count == 1:
        return [lo]
    step = (hi - lo - side) / (count - 1)
    return [int(round(lo + k * step)) for k in range(count)]


def tiles_over(region: Box, side: int, width: int, height: int, overlap: float) -> list[Box]:
    """Square tiles of ``side`` frame pixels covering a region, with at least ``overlap``
    between neighbours, spread evenly, inside the frame."""
    xs = _axis(region[0], region[2], side, overlap, width)
    ys = _axis(region[1], region[3], side, overlap, height)
    return [(x, y, min(width, x + side), min(height, y + side)) for y in ys for x in xs]


def _intersection(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(a: Box) -> int:
    return max(1, (a[2] - a[0]) * (a[3] - a[1]))


def _grown(a: Box, share: float) -> Box:
    """The box grown on every side by ``share`` of its height."""
    m = int((a[3] - a[1]) * share)
    return (a[0] - m, a[1] - m, a[2] + m, a[3] + m)


def merge_regions(regions: list[Box], margin: int) -> list[Box]:
    """Union of regions that overlap or lie within ``margin`` of each other: a person's
    motion blobs and its tracked box become one region, so one crop, not three."""
    boxes = np.array(regions, np.int64).reshape(-1, 4)
    while len(boxes) > 1:
        near = ((boxes[:, None, 0] - margin <= boxes[None, :, 2]) & (boxes[None, :, 0] - margin <= boxes[:, None, 2])
                & (boxes[:, None, 1] - margin <= boxes[None, :, 3]) & (boxes[None, :, 1] - margin <= boxes[:, None, 3]))
        # each region joins everything it touches; repeat until nothing touches anything else
        groups: list[list[int]] = []
        seen = np.zeros(len(boxes), bool)
        for i in range(len(boxes)):
            if seen[i]:
                continue
            group, frontier = {i}, [i]
            while frontier:
                k = frontier.pop()
                for j in np.nonzero(near[k] & ~seen)[0]:
                    if j not in group:
                        group.add(int(j))
                        frontier.append(int(j))
            seen[list(group)] = True
            groups.append(sorted(group))
        if len(groups) == len(boxes):
            break
        boxes = np.array([[boxes[g, 0].min(), boxes[g, 1].min(), boxes[g, 2].max(), boxes[g, 3].max()]
                          for g in groups])
    return [tuple(int(v) for v in b) for b in boxes]


def _intersections(a: list[Box], b: list[Box]) -> np.ndarray:
    """Pairwise intersection areas, ``len(a)`` x ``len(b)``."""
    x = np.array(a, np.int64).reshape(-1, 4)
    y = np.array(b, np.int64).reshape(-1, 4)
    w = np.clip(np.minimum(x[:, None, 2], y[None, :, 2]) - np.maximum(x[:, None, 0], y[None, :, 0]), 0, None)
    h = np.clip(np.minimum(x[:, None, 3], y[None, :, 3]) - np.maximum(x[:, None, 1], y[None, :, 1]), 0, None)
    return w * h


def levels(width: int, height: int, size: int) -> dict[str, float]:
    """The scales at which a frame can be looked at (model pixels per frame pixel)."""
    long, short = max(width, height), min(width, height)
    out = {WHOLE: min(1.0, size / long)}
    if long >= 1.5 * short and short >= 2 * size:
        out[MID] = size / short
    if long > 1.25 * size:
        out[NATIVE] = 1.0
    return out


def _native(frame: FrameNeeds, size: int, overlap: float, small: list[Box]) -> list[Crop]:
    """Native tiles centred on (groups of) small regions, most small-region area first."""
    w, h = frame.width, frame.height
    if not small:
        return []
    tiles = list(dict.fromkeys(t for group in merge_regions(small, size // 8)
                               for t in tiles_over(group, size, w, h, overlap)))
    covered = _intersections(tiles, small).sum(axis=1)
    order = sorted(range(len(tiles)), key=lambda k: -covered[k])
    return [Crop(NATIVE, tiles[k], 1.0) for k in order if covered[k] > 0]


def frame_options(frame: FrameNeeds, size: int, overlap: float, min_object_px: float,
                  wide_mid_px: int = 0) -> _Options:
    w, h = frame.width, frame.height
    scales = levels(w, h, size)

    def too_small(scale: float) -> list[Box]:
        """Regions too small to be seen at this scale, except those that are a part of a
        larger region (a moving arm in the box of a tracked person, a shadow beside it)."""
        large = [_grown(r, 0.1) for r in frame.regions if (r[3] - r[1]) * scale >= min_object_px]
        small = [r for r in frame.regions if (r[3] - r[1]) * scale < min_object_px]
        if not small or not large:
            return small
        part_of = (2 * _intersections(small, large) >= np.array([[_area(r)] for r in small])).any(axis=1)
        return [r for r, part in zip(small, part_of) if not part]

    whole = Crop(WHOLE, (0, 0, w, h), scales[WHOLE])
    mid: list[Crop] = []
    if MID in scales and too_small(scales[WHOLE]):
        squares = [Crop(MID, s, scales[MID]) for s in tiles_over((0, 0, w, h), min(w, h), w, h, overlap)
                   if any(_intersection(s, r) for r in frame.regions)]
        mid = squares
        if wide_mid_px and len(squares) > 1:
            # Neighbouring squares as one crop, wide_mid_px tall, if the model may take it.
            scale = wide_mid_px / min(w, h)
            union = (min(c.box[0] for c in squares), 0, max(c.box[2] for c in squares), h)
            if (union[2] - union[0]) * scale <= 2 * size:
                mid = [Crop(MID, union, scale, cost=len(squares))]
    native_after_mid = native_after_whole = []
    if NATIVE in scales:
        native_after_whole = _native(frame, size, overlap, too_small(scales[WHOLE]))
        native_after_mid = _native(frame, size, overlap, too_small(mid[0].scale)) if mid else native_after_whole
    return _Options(whole, mid, native_after_mid, native_after_whole)


def plan_batch(frames: list[FrameNeeds], size: int, overlap: float, min_object_px: float,
               wide_mid_px: int = 0) -> list[FramePlan]:
    """Crops for every frame of a batch within the batch's budget of model passes.
    ``wide_mid_px``: the model takes a mid view wider than its input as one crop, this
    many model pixels tall (0: squares only)."""
    options = [frame_options(f, size, overlap, min_object_px, wide_mid_px) for f in frames]
    budget = math.floor(sum(f.passes for f in frames) + 1e-9) - len(frames)  # beyond one pass each
    plans, natives = [], []
    for o in options:
        mid_cost = sum(c.cost for c in o.mid)
        wanted = mid_cost + len(o.native_after_mid) if o.mid else 1 + len(o.native_after_whole)
        if o.mid and mid_cost - 1 <= budget:
            budget -= mid_cost - 1
            plans.append(FramePlan(list(o.mid), wanted))
            natives.append(o.native_after_mid)
        else:
            plans.append(FramePlan([o.whole], wanted))
            natives.append(o.native_after_whole)
    rank = 0
    while budget > 0 and any(rank < len(n) for n in natives):
        for plan, tiles in zip(plans, natives):
            if rank < len(tiles) and budget > 0:
                plan.crops.append(tiles[rank])
                budget -= 1
        rank += 1
    return plans
