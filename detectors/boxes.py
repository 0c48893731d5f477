"""Detections, the labels and groups of labels the pipeline knows, and merging the boxes
that several crops of one frame found for the same object.

One object is often found more than once: by the whole frame shrunk to the model's input
and by a finer tile, or by two overlapping tiles. Two steps make it one box:

1. non-maximum suppression per *kind* (class-aware, with car, truck, bus and motorcycle
   one kind: the same lorry comes back as "truck" from one crop and "bus" from another);
2. fragment merging: a tile cuts an object that crosses its edge, and the model often
   boxes the part it sees (a torso, a head and shoulders). Such a box lies mostly inside
   the box of the whole object found elsewhere, with an IoU too low for step 1. A box
   that touches a cut edge of its tile and lies mostly inside another box of the same
   kind is a fragment: it goes (or, when both were cut, the two become their union). A
   box that was not cut is never merged away, so two people one behind the other stay two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
# Names a zone may use for several labels at once (configs/cameras.yaml: objects: [vehicle]).
GROUPS = {"vehicle": ("car", "truck", "bus", "motorcycle")}


def kind_of(label: str) -> str:
    """The group a label belongs to (``vehicle``), or the label itself."""
    for group, members in GROUPS.items():
        if label in members:
            return group
    return label


def expand_labels(names) -> tuple[str, ...]:
    """Labels and group names -> the labels they stand for, in order, once each."""
    out: list[str] = []
    for name in names:
        for label in GROUPS.get(name, (name,)):
            if label not in out:
                out.append(label)
    return tuple(out)


@dataclass
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # frame pixels
    cut: bool = False  # touches an edge where its crop cut the frame: maybe only part of the object

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def footpoint(self) -> tuple[float, float]:
        """Bottom centre of the box: where the object stands (Frigate's zone rule)."""
        return ((self.box[0] + self.box[2]) / 2, self.box[3])


def iou(a, b) -> float:
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def inside_share(a, b) -> float:
    """How much of the smaller of two boxes lies inside the other (intersection over smaller)."""
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 0.0


def suppress(detections: list[Detection], threshold: float) -> list[Detection]:
    """Non-maximum suppression per kind: of boxes of one kind overlapping by ``threshold``
    IoU or more, one stays, with the best score and label. Its extent is the best one
    seen: a box that no tile cut is preferred to a cut one, and two cut views of one
    object (the halves two tiles saw) are joined."""
    ordered = sorted(detections, key=lambda d: -d.score)
    if not ordered:
        return []
    overlap = iou_matrix([d.box for d in ordered])
    kinds = [kind_of(d.label) for d in ordered]
    taken = np.zeros(len(ordered), bool)
    kept: list[Detection] = []
    for i, d in enumerate(ordered):
        if taken[i]:
            continue
        keep = Detection(d.label, d.score, d.box, d.cut)
        for j in np.nonzero(~taken & (overlap[i] >= threshold))[0]:
            if j <= i or kinds[j] != kinds[i]:
                continue
            taken[j] = True
            other = ordered[j]
            if keep.cut and other.cut:
                keep.box = (min(keep.box[0], other.box[0]), min(keep.box[1], other.box[1]),
                            max(keep.box[2], other.box[2]), max(keep.box[3], other.box[3]))
            elif keep.cut:
                keep.box, keep.cut = other.box, False
        kept.append(keep)
    return kept


def iou_matrix(boxes) -> np.ndarray:
    """IoU of every pair of boxes."""
    b = np.array(boxes, float).reshape(-1, 4)
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def merge_fragments(detections: list[Detection], share: float) -> list[Detection]:
    """Drop (or join) the parts of objects that a tile edge cut, see the module's text."""
    boxes = sorted(detections, key=lambda d: -d.area)
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                if not (a.cut or b.cut) or kind_of(a.label) != kind_of(b.label):
                    continue
                if inside_share(a.box, b.box) <= share:
                    continue
                best = a if a.score >= b.score else b
                if a.cut and b.cut:  # both halves of an object that straddles two tiles
                    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
                           max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
                    joined = Detection(best.label, best.score, box, cut=False)
                else:  # the whole object and a part of it: the whole one stays
                    whole = b if a.cut else a
                    joined = Detection(whole.label, max(a.score, b.score), whole.box, cut=False)
                boxes = [d for k, d in enumerate(boxes) if k not in (i, j)] + [joined]
                boxes.sort(key=lambda d: -d.area)
                changed = True
                break
            if changed:
                break
    return boxes


def merge(detections: list[Detection], nms_iou: float, fragment_share: float) -> list[Detection]:
    """One box per object from the boxes of all crops of a frame, best score first."""
    merged = merge_fragments(suppress(detections, nms_iou), fragment_share)
    return sorted(merged, key=lambda d: -d.score)
