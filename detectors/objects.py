"""Person and vehicle detection with ultralytics YOLO on the crops the planner chose.

The model sees a fixed input (416 px for the offline NanoDet, 640 for standard YOLO). The
planner (``detectors.crops``) decides, for all frames of a batch together, which crops
each frame gets: the whole frame at the model's size, and finer squares and native-
resolution tiles where the motion or the tracked objects in the camera's zones are too
small to be found on the whole. Each frame is decoded only as finely as its finest crop
needs; crops are shrunk to the model's size here (after the decoder's own reduction
the step left is small); all crops of all cameras go to the model in one call per input
shape (wide frames run on a re-shaped copy of a fixed-square model: ``detectors.
model_shapes``); boxes come back to frame coordinates and are merged
(``detectors.boxes.merge``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydantic import ConfigDict

from detectors.boxes import LABELS, Box, Detection, merge
from detectors.crops import WHOLE, Crop, FrameNeeds, levels, plan_batch
from detectors.images import decode, jpeg_size, reduction_for
from detectors.model_shapes import input_shape, wide_variant


@dataclass(frozen=True)
class DetectorRules:
    """Detection thresholds (configs/thresholds.yaml, section ``vision.detector``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # Per label, the score a single box needs. Person: from the measured precision/recall
    # curve of the offline model (README, "Calibrating the thresholds").
    min_score: dict[str, float] = field(default_factory=lambda: {
        "person": 0.3, "car": 0.3, "truck": 0.3, "bus": 0.35, "motorcycle": 0.35, "bicycle": 0.35})
    min_box_area: int = 120  # px in the frame: smaller boxes are noise
    passes_per_frame: float = 2.0  # model passes a batch may spend, per frame it detects (shared)
    min_object_px: float = 36.0  # height in model pixels under which the model starts missing people
    # A wide frame's mid view on a model that takes wide inputs: one crop this many model
    # pixels tall (a 1080p frame at 0.326; README "Detection on a multi-scale plan").
    mid_view_px: int = 352
    tile_overlap: float = 0.2
    nms_iou: float = 0.5
    fragment_share: float = 0.6  # a cut box this much inside another of its kind is a part of it

    def __post_init__(self) -> None:
        unknown = set(self.min_score) - set(LABELS)
        if unknown:
            raise ValueError(f"min_score: labels {sorted(unknown)} are not detected; use {list(LABELS)}")
        if self.passes_per_frame < 1:
            raise ValueError("passes_per_frame must be at least 1 (the whole frame)")
        if self.mid_view_px < 96 or self.mid_view_px % 32:
            raise ValueError("mid_view_px must be a multiple of 32, at least 96 (the model's largest stride)")


@dataclass
class FrameJob:
    """One frame for the detector: its JPEG, the regions that matter, its thresholds."""

    jpeg: bytes
    regions: list[Box]
    rules: DetectorRules


@dataclass
class FrameDetections:
    detections: list[Detection]
    image: np.ndarray | None  # the frame as decoded for the crops (maybe reduced); None: corrupt
    reduction: int = 1
    crops: list[Crop] = field(default_factory=list)
    wanted: int = 0  # crops the planner would have liked to use


class ObjectDetector:
    """ultralytics YOLO from a weights file (.pt or exported .onnx); never downloads.

    A fixed-square ONNX model gets re-shaped copies for wide images (``detectors.
    model_shapes``): a 16:9 frame at model size runs at 416 × 256 instead of being padded to
    416 × 416, about 40 % less work per whole-frame pass, the same boxes; a 1080p frame's
    mid view runs as one 640 × 352 input instead of two overlapping 416-px squares."""

    MAX_SHAPES = 3  # re-shaped copies kept besides the model itself (each ≈15 MB and a session)

    def __init__(self, model_path: str | Path, rules: DetectorRules = DetectorRules(),
                 shapes_dir: Path | None = None, wide_inputs: bool = True):
        """``shapes_dir``: where re-shaped copies are kept (default: the system's temporary
        folder); ``wide_inputs=False`` runs every image on the model as it is (benchmarks)."""
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"model weights not found at {path}; provision them with `shaftwatch model fetch` "
                "or name a local file in configs/shaftwatch.yaml (model_path)")
        os.environ.setdefault("YOLO_OFFLINE", "1")
        self.path = path
        # Loaded with a warm-up run, only after which an exported model tells its input size
        # (a fixed 416 for the offline NanoDet, 640 for standard YOLO weights).
        self.model = _loaded(path, (64, 64))
        self.rules = rules
        names = self.model.names if isinstance(self.model.names, dict) else dict(enumerate(self.model.names))
        self.wanted = {i for i, n in names.items() if n in LABELS}
        self.names = names
        imgsz = self.model.predictor.args.imgsz
        self.input_size = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)
        self.decode_ms = 0.0  # of the last detect_frames: decoding and cropping, the rest
        self.model_ms = 0.0
        # Only an exported ONNX model has a fixed square input (.pt models take any shape),
        # and only one of the layout detectors.model_shapes knows can be re-shaped: asked
        # once here (the 16:9 whole-frame copy, built or found in the cache), since the
        # planner gives wide mid views only to a detector that runs them at their size.
        self.shapes_dir = shapes_dir
        # Input (rows, columns) -> model; None where this model's layout cannot be re-shaped.
        self.by_shape: dict[tuple[int, int], object] = {(self.input_size, self.input_size): self.model}
        self.reshapable = wide_inputs and path.suffix == ".onnx"
        if self.reshapable:
            rows, columns = input_shape(16, 9, self.input_size)
            # Loaded now (model_for loads a copy with a warm-up run): the first frame with
            # motion would otherwise wait for this session (≈0.25 s here), and a shaft's first
            # person reports at once.
            self.reshapable = self.model_for(columns, rows) is not self.model

    def load_shapes_for(self, sizes) -> None:
        """Load now the re-shaped copies that frames of these (width, height) need when
        distant people move all across them (a 1080p camera's mid view, a 4:3 camera's
        whole view), as the 16:9 whole view is loaded at start: the first crowded frame, or
        a shaft's first distant person, would otherwise wait for a session to load (≈0.25 s
        here, and seconds where the copy is first built)."""
        if not self.reshapable:
            return
        r = self.rules
        needs = []
        for w, h in sorted(set(sizes)):
            # Distant people all across the frame, each too small for the whole view.
            tall = max(2, int(r.min_object_px / levels(w, h, self.input_size)[WHOLE] / 2))
            people = [(x, (h - tall) // 2, x + max(1, tall // 3), (h + tall) // 2)
                      for x in range(0, max(1, w - tall), max(1, w // 8))]
            needs.append(FrameNeeds(w, h, people, r.passes_per_frame))
        for plan in plan_batch(needs, self.input_size, r.tile_overlap, r.min_object_px,
                               min(r.mid_view_px, self.input_size)):
            for crop in plan.crops:
                self.model_for(*crop.image_size)

    def model_for(self, width: int, height: int):
        """The model that runs a width × height image with the least padding."""
        if not self.reshapable or width <= height:
            return self.model
        shape = input_shape(width, height, self.input_size)
        if shape not in self.by_shape:
            if len(self.by_shape) > self.MAX_SHAPES:
                return self.model
            variant = wide_variant(self.path, shape[0], self.shapes_dir, width=shape[1])
            self.by_shape[shape] = _loaded(variant, shape) if variant else None
        return self.by_shape[shape] or self.model

    def run(self, images: list[np.ndarray], floor: float) -> list[list[Detection]]:
        """One call to the model per input shape; per image, boxes of the labels of interest
        scoring ``floor`` or more, in that image's pixels."""
        if not images:
            return []
        groups: dict[int, tuple[object, list[int]]] = {}  # one model call per input shape
        for k, image in enumerate(images):
            model = self.model_for(image.shape[1], image.shape[0])
            groups.setdefault(id(model), (model, []))[1].append(k)
        out: list[list[Detection]] = [[] for _ in images]
        for model, indexes in groups.values():
            results = model.predict([images[k] for k in indexes], verbose=False, conf=floor,
                                    classes=sorted(self.wanted))
            for k, result in zip(indexes, results):
                boxes = result.boxes
                out[k] = [Detection(self.names[int(c)], float(s), tuple(xyxy)) for c, s, xyxy in
                          zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist())]
        return out

    def detect(self, images: list[np.ndarray], rules: DetectorRules | None = None) -> list[list[Detection]]:
        """Whole images, each shrunk to the model's input: detections over the per-label scores."""
        rules = rules or self.rules
        found = self.run(images, min(rules.min_score.values()))
        return [[d for d in f if d.score >= rules.min_score.get(d.label, 1.01)] for f in found]

    def detect_frames(self, jobs: list[FrameJob]) -> list[FrameDetections]:
        """Per frame, the objects found on the crops the batch's plan gives it."""
        sizes = [jpeg_size(job.jpeg) for job in jobs]
        usable = [i for i, size in enumerate(sizes) if size is not None]
        needs = [FrameNeeds(*sizes[i], jobs[i].regions, jobs[i].rules.passes_per_frame) for i in usable]
        rules0 = jobs[usable[0]].rules if usable else self.rules
        plans = plan_batch(needs, self.input_size, rules0.tile_overlap, rules0.min_object_px,
                           min(rules0.mid_view_px, self.input_size) if self.reshapable else 0)
        out = [FrameDetections([], None) for _ in jobs]
        images, owners = [], []
        started = time.perf_counter()
        for i, plan in zip(usable, plans):
            reduction = reduction_for(plan.finest_scale)
            image = decode(jobs[i].jpeg, reduction)
            if image is None:
                continue
            out[i] = FrameDetections([], image, reduction, plan.crops, plan.wanted)
            for crop in plan.crops:
                images.append(crop_image(image, reduction, crop))
                owners.append((i, crop))
        self.decode_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        floor = min(min(job.rules.min_score.values()) for job in jobs)
        found: list[list[Detection]] = [[] for _ in jobs]
        for (i, crop), boxes, image in zip(owners, self.run(images, floor), images):
            w, h = sizes[i]
            found[i] += [to_frame(d, crop, image.shape[1], image.shape[0], w, h) for d in boxes
                         if d.score >= jobs[i].rules.min_score.get(d.label, 1.01)]
        for i in usable:
            rules = jobs[i].rules
            out[i].detections = [d for d in merge(found[i], rules.nms_iou, rules.fragment_share)
                                 if d.area >= rules.min_box_area]
        self.model_ms = (time.perf_counter() - started) * 1000
        return out


def _loaded(path: Path, shape: tuple[int, int]):
    """A YOLO model of ``path``, run once on a blank ``shape`` (rows, columns) image so that
    its backend is loaded (an ONNX model on the process's shared threads)."""
    from ultralytics import YOLO  # imported here: it is heavy, and only workers with cameras need it

    _onnx_on_shared_threads()
    model = YOLO(str(path), task="detect")
    model.predict(np.zeros((*shape, 3), np.uint8), verbose=False)
    return model


# ONNX Runtime gives each session a pool of its own threads, which spin for a while after
# every run waiting for more work. The detector runs a model and its re-shaped copies in
# turn (whole views, mid views, tiles), and each session's spinning pool took the cores from
# the next: with five shapes used in turn a 416-px pass took 52 ms instead of 18-20 alone,
# and a crowded 1080p frame on a budget of 4 passes 126-131 ms instead of 90-92 (make
# bench-vision's budget row, README). One pool for the process serves every session in turn.
_SHARED_POOL_THREADS = 0  # ONNX Runtime's own default: one thread per physical core


def onnx_threads_shared() -> bool:
    """Whether this process already runs its ONNX models on the one shared pool (after
    which ONNX Runtime refuses sessions with threads of their own)."""
    backends = sys.modules.get("ultralytics.nn.autobackend")  # not loaded: no detector yet
    return backends is not None and getattr(backends.AutoBackend._BACKEND_MAP.get("onnx"), "shared_threads", False)


def _onnx_on_shared_threads() -> None:
    """From now on, every ONNX model ultralytics loads in this process runs on the process's
    one thread pool. Once that pool exists ONNX Runtime refuses a session with threads of
    its own, so the backend ultralytics builds for .onnx files is replaced for good (its
    ``session_options`` argument, which ultralytics 8.4 never passes, is how)."""
    import onnxruntime
    from onnxruntime.capi import _pybind_state
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.backends import ONNXBackend

    if onnx_threads_shared():
        return
    try:
        _pybind_state.set_global_thread_pool_sizes(_SHARED_POOL_THREADS, 1)
    except _pybind_state.Fail as exc:
        if "already been created" not in str(exc):
            raise

    class SharedThreadsONNXBackend(ONNXBackend):
        shared_threads = True

        def __init__(self, weight, device, fp16: bool = False, format: str = "onnx", session_options=None):
            if session_options is None:
                session_options = onnxruntime.SessionOptions()
                session_options.use_per_session_threads = False
            super().__init__(weight, device, fp16, format, session_options)

    AutoBackend._BACKEND_MAP = {**AutoBackend._BACKEND_MAP, "onnx": SharedThreadsONNXBackend,
                                "xilinx": SharedThreadsONNXBackend}


def crop_image(image: np.ndarray, reduction: int, crop: Crop) -> np.ndarray:
    """The crop's pixels at the crop's scale, from a frame decoded at 1/reduction."""
    x0, y0, x1, y1 = crop.box
    r = reduction
    part = image[y0 // r:-(-y1 // r), x0 // r:-(-x1 // r)]
    target = crop.image_size
    if (part.shape[1], part.shape[0]) == target:
        return part
    # Area averaging keeps small figures when shrinking a lot; after the JPEG decoder's own
    # reduction what is left is less than half, where bilinear (as ultralytics' letterbox
    # uses) is as good and 7x faster (2.5 ms a crop here for area averaging).
    shrink = part.shape[1] / target[0]
    return cv2.resize(part, target, interpolation=cv2.INTER_AREA if shrink >= 2 else cv2.INTER_LINEAR)


def to_frame(d: Detection, crop: Crop, image_w: int, image_h: int, width: int, height: int) -> Detection:
    """A box found on a crop's image, in frame pixels; ``cut`` when it touches an edge
    where the crop cut through the frame."""
    x0, y0, x1, y1 = crop.box
    sx, sy = (x1 - x0) / image_w, (y1 - y0) / image_h
    box = (x0 + d.box[0] * sx, y0 + d.box[1] * sy, x0 + d.box[2] * sx, y0 + d.box[3] * sy)
    cut = False
    if crop.level != WHOLE:
        tolerance = 4 / crop.scale  # 4 model pixels
        cut = ((x0 > 0 and box[0] - x0 < tolerance) or (x1 < width and x1 - box[2] < tolerance)
               or (y0 > 0 and box[1] - y0 < tolerance) or (y1 < height and y1 - box[3] < tolerance))
    return Detection(d.label, d.score, box, cut)
