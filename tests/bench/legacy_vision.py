"""The camera pipeline's detection stage and thresholds as they were before issue 11, kept
only so that `make bench-vision` can put old and new side by side on the same frames.

Then: per frame, the motion (and tracked) regions were grown to the model's input and
tiled at native resolution, at most ``max_crops_per_frame`` (6) crops; a frame that needed
more, or whose crops covered more pixels than the frame, was shrunk whole to the model's
input instead; boxes were merged by NMS per label. Person min_score 0.35, track threshold
0.5, motion gate min_area_fraction 0.0015, no night gate.
"""

from __future__ import annotations

import time
from dataclasses import replace

from detectors.boxes import Detection, iou
from detectors.camera import VisionRules
from detectors.crops import WHOLE, Crop, merge_regions
from detectors.images import decode
from detectors.objects import FrameDetections, ObjectDetector

RULES = VisionRules()
RULES = replace(RULES, motion=replace(RULES.motion, min_area_fraction=0.0015),
                detector=replace(RULES.detector, min_score={**RULES.detector.min_score, "person": 0.35}),
                tracker=replace(RULES.tracker, threshold={**RULES.tracker.threshold, "person": 0.5}))
MAX_CROPS = 6


def plan_crops(width: int, height: int, regions, size: int, overlap: float, limit: int):
    crops = []
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
                if not any(c[0] <= crop[0] and c[1] <= crop[1] and c[2] >= crop[2] and c[3] >= crop[3]
                           for c in crops):
                    crops.append(crop)
    if len(crops) > limit or len(crops) * size * size >= width * height:
        return []
    return crops


def nms_per_label(detections: list[Detection], threshold: float) -> list[Detection]:
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        if all(k.label != d.label or iou(k.box, d.box) < threshold for k in kept):
            kept.append(d)
    return kept


class LegacyDetector(ObjectDetector):
    """ObjectDetector with the old per-frame planner and merge."""

    def detect_frames(self, jobs):
        started = time.perf_counter()
        out, images, owners = [], [], []
        for i, job in enumerate(jobs):
            image = decode(job.jpeg)
            h, w = image.shape[:2]
            crops = plan_crops(w, h, job.regions, self.input_size, 0.2, MAX_CROPS) if job.regions else []
            boxes = crops or [(0, 0, w, h)]
            out.append(FrameDetections([], image, 1, [Crop(WHOLE, b, 1.0) for b in boxes], len(boxes)))
            for b in boxes:
                images.append(image[b[1]:b[3], b[0]:b[2]] if crops else image)
                owners.append((i, b))
        self.decode_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        floor = min(min(job.rules.min_score.values()) for job in jobs)
        found = [[] for _ in jobs]
        for (i, b), boxes in zip(owners, self.run(images, floor)):
            rules = jobs[i].rules
            found[i] += [Detection(d.label, d.score, (d.box[0] + b[0], d.box[1] + b[1], d.box[2] + b[0],
                                                      d.box[3] + b[1]))
                         for d in boxes if d.score >= rules.min_score.get(d.label, 1.01)]
        for i, job in enumerate(jobs):
            out[i].detections = [d for d in nms_per_label(found[i], job.rules.nms_iou)
                                 if d.area >= job.rules.min_box_area]
        self.model_ms = (time.perf_counter() - started) * 1000
        return out
