"""Person and vehicle detection with ultralytics YOLO, on regions of the frame.

The model sees a fixed input (416 px for the offline NanoDet, 640 for standard YOLO).
Shrinking a whole 1080p frame to it turns a person 30 px tall at a distant shaft mouth
into a few pixels, which no model finds. So detection runs on crops taken from the frame
at native resolution: the boxes of motion (grown to at least the model's input, so the
object has context), tiled with overlap where a region is larger than the input. Crops of
all cameras go to the model in one batch; boxes come back to frame coordinates, and
duplicates from overlapping tiles are merged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ConfigDict

Box = tuple[int, int, int, int]
LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


@dataclass(frozen=True)
class DetectorRules:
    """Detection thresholds (configs/thresholds.yaml, section ``vision.detector``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    min_score: dict[str, float] = field(default_factory=lambda: {
        "person": 0.35, "car": 0.35, "truck": 0.35, "bus": 0.4, "motorcycle": 0.35, "bicycle": 0.35})
    min_box_area: int = 120  # px in the frame: smaller boxes are noise
    tile_overlap: float = 0.2
    max_crops_per_frame: int = 6  # beyond this, the whole frame is shrunk instead (a scene full of motion)
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        unknown = set(self.min_score) - set(LABELS)
        if unknown:
            raise ValueError(f"min_score: labels {sorted(unknown)} are not detected; use {list(LABELS)}")


@dataclass
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # frame pixels

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def footpoint(self) -> tuple[float, float]:
        """Bottom centre of the box: where the object stands (Frigate's zone rule)."""
        return ((self.box[0] + self.box[2]) / 2, self.box[3])


def iou(a, b) -> float:
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_regions(regions: list[Box], margin: int) -> list[Box]:
    """Union of regions that overlap or lie within ``margin`` of each other: a person's
    motion blobs and its tracked box become one region, so one crop, not three."""
    boxes = [list(r) for r in regions]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] - margin <= b[2] and b[0] - margin <= a[2] and a[1] - margin <= b[3] and b[1] - margin <= a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in boxes]


def plan_crops(width: int, height: int, regions: list[Box], size: int, overlap: float, limit: int) -> list[Box]:
    """Crops at native resolution covering the regions: each region grown to at least the
    model's input around its centre, tiled where larger. An empty list means: detect on the
    whole frame instead (too many crops, or crops that would cost more than the frame)."""
    crops: list[Box] = []
    step = max(1, int(size * (1 - overlap)))
    for x0, y0, x1, y1 in merge_regions(regions, size // 8):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w, h = max(size, x1 - x0), max(size, y1 - y0)
        rx0 = int(min(max(0, cx - w / 2), max(0, width - w)))
        ry0 = int(min(max(0, cy - h / 2), max(0, height - h)))
        rx1, ry1 = min(width, int(rx0 + w)), min(height, int(ry0 + h))
        xs = list(range(rx0, max(rx0 + 1, rx1 - size + 1), step)) or [rx0]
        ys = list(range(ry0, max(ry0 + 1, ry1 - size + 1), step)) or [ry0]
        if xs[-1] + size < rx1:
            xs.append(max(rx0, rx1 - size))
        if ys[-1] + size < ry1:
            ys.append(max(ry0, ry1 - size))
        for tx in xs:
            for ty in ys:
                crop = (tx, ty, min(width, tx + size), min(height, ty + size))
                if not any(_contains(c, crop) for c in crops):
                    crops.append(crop)
    # Each crop is one model run; a small frame is cheaper to run once, whole.
    if len(crops) > limit or len(crops) * size * size >= width * height:
        return []
    return crops


def _contains(outer: Box, inner: Box) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def merge(detections: list[Detection], threshold: float) -> list[Detection]:
    """Non-maximum suppression per label: the same object seen in two overlapping tiles is one."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        if all(k.label != d.label or iou(k.box, d.box) < threshold for k in kept):
            kept.append(d)
    return kept


class ObjectDetector:
    """ultralytics YOLO from a weights file (.pt or exported .onnx); never downloads."""

    def __init__(self, model_path: str | Path, rules: DetectorRules = DetectorRules()):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"model weights not found at {path}; provision them with `shaftwatch model fetch` "
                "or name a local file in configs/shaftwatch.yaml (model_path)")
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO  # imported here: it is heavy, and only workers with cameras need it

        self.model = YOLO(str(path), task="detect")
        self.rules = rules
        names = self.model.names if isinstance(self.model.names, dict) else dict(enumerate(self.model.names))
        self.wanted = {i for i, n in names.items() if n in LABELS}
        self.names = names
        # One warm-up run loads the backend; only then does an exported model tell its input
        # size (a fixed 416 for the offline NanoDet, 640 for standard YOLO weights).
        self.model.predict(np.zeros((64, 64, 3), np.uint8), verbose=False)
        imgsz = self.model.predictor.args.imgsz
        self.input_size = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """One batch through the model; per image, detections of the labels of interest."""
        if not images:
            return []
        low = min(self.rules.min_score.values())
        results = self.model.predict(images, verbose=False, conf=low, classes=sorted(self.wanted))
        out = []
        for result in results:
            found = []
            boxes = result.boxes
            for cls, score, xyxy in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist()):
                label = self.names[int(cls)]
                if score >= self.rules.min_score.get(label, 1.01):
                    found.append(Detection(label, float(score), tuple(xyxy)))
            out.append(found)
        return out

    def detect_regions(self, frames: list[np.ndarray], regions: list[list[Box]]) -> list[list[Detection]]:
        """Per frame, detections on crops of its regions (all crops in one batch)."""
        jobs: list[tuple[int, Box | None]] = []
        images = []
        for i, (frame, frame_regions) in enumerate(zip(frames, regions)):
            h, w = frame.shape[:2]
            crops = plan_crops(w, h, frame_regions, self.input_size, self.rules.tile_overlap,
                               self.rules.max_crops_per_frame) if frame_regions else []
            if not crops:
                jobs.append((i, None))
                images.append(frame)
                continue
            for crop in crops:
                jobs.append((i, crop))
                images.append(frame[crop[1]:crop[3], crop[0]:crop[2]])
        per_frame: list[list[Detection]] = [[] for _ in frames]
        for (i, crop), found in zip(jobs, self.detect(images)):
            for d in found:
                if crop is not None:
                    d.box = (d.box[0] + crop[0], d.box[1] + crop[1], d.box[2] + crop[0], d.box[3] + crop[1])
                per_frame[i].append(d)
        return [[d for d in merge(found, self.rules.nms_iou) if d.area >= self.rules.min_box_area]
                for found in per_frame]
