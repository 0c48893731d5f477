"""An 8-bit copy of an ONNX detector: its convolutions in int8, everything after them in float.

A model pass is most of the camera pipeline's cost (README, "Limits"). This CPU has 8-bit
dot-product instructions (AVX-512 VNNI), on which ONNX Runtime runs an int8 convolution in
about half the time of a float one. ``int8_copy`` writes a copy of the model whose
convolutions take int8 weights (per output channel) and int8 activations, the activation
ranges measured on calibration pictures from the cameras (static quantization, ONNX
Runtime's QDQ format). Only convolutions: the network's tail — the box distributions'
softmax, the class sigmoids and the decoding of boxes into pixels — computes in float on
the head convolutions' outputs (8-bit values, each tensor with a scale of its own), because
a score of 0.3 and a box edge at 400 px cannot share one 8-bit scale (quantizing every
operator collapsed the class scores to 0: README). The boxes and scores of the copy stay
within a few pixels and a few hundredths of the float model's
(tests/detectors/test_quantize.py); its recall is measured like any other model's
(README, "The model").

The copy keeps the float model's input, output and metadata, so ultralytics loads it as it
loads the original and ``detectors.model_shapes`` re-shapes it for wide frames.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

# Pictures used to measure the activations' ranges. More change little (min-max ranges);
# what matters is that they look like the cameras' own (day and night, people and cars).
CALIBRATION_PICTURES = 48
PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".ts"}


def calibration_pictures(sources: Sequence[Path], count: int = CALIBRATION_PICTURES) -> list[np.ndarray]:
    """Up to ``count`` BGR pictures spread evenly over the videos and pictures given (files,
    or folders holding them): each video gets an equal share, the loose pictures another."""
    videos: list[Path] = []
    files: list[Path] = []
    for source in sources:
        found = sorted(source.rglob("*")) if source.is_dir() else [source] if source.is_file() else None
        if found is None:
            raise FileNotFoundError(f"calibration source {source} does not exist")
        videos += [f for f in found if f.suffix.lower() in VIDEO_SUFFIXES]
        files += [f for f in found if f.suffix.lower() in PICTURE_SUFFIXES]
    share = -(-count // max(1, len(videos) + bool(files)))
    pictures = [frame for video in videos for frame in _video_frames(video, share)]
    for f in files[:: max(1, len(files) // share)][:share]:
        if (picture := cv2.imread(str(f))) is not None:
            pictures.append(picture)
    if not pictures:
        raise ValueError("no pictures or videos could be read from the calibration sources "
                         f"({', '.join(map(str, sources)) or 'none given'})")
    return pictures[:count]


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            raise ValueError(f"{path} is neither a picture folder nor a video OpenCV can read")
        frames = []
        for index in np.linspace(0, total - 1, count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                frames.append(frame)
        return frames
    finally:
        capture.release()


def model_input(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """A BGR picture as the model sees it through ultralytics: letterboxed (grey 114),
    RGB, 0-1, NCHW."""
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox((rows, columns), auto=False)(image=image)
    return np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255


def int8_copy(model_path: Path, target: Path, pictures: list[np.ndarray]) -> Path:
    """Write the int8 copy of the ONNX model at ``model_path`` to ``target``. Run it in a
    process that has not loaded a detector: calibration runs ONNX Runtime sessions with
    threads of their own, which ONNX Runtime refuses once the detector's shared pool exists
    (``detectors.objects``); ``shaftwatch model quantize`` is such a process."""
    from detectors.objects import onnx_threads_shared

    if onnx_threads_shared():
        raise RuntimeError("a detector is already loaded in this process; quantize in a process of its own "
                           "(shaftwatch model quantize)")
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(model_path))
    if len(model.graph.input) != 1:
        raise ValueError(f"{model_path}: expected a detector with one input, it has {len(model.graph.input)}")
    name = model.graph.input[0].name
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not dims[2] or not dims[3]:
        raise ValueError(f"{model_path}: expected a fixed NCHW input, it has {dims}")
    inputs = [{name: model_input(p, dims[2], dims[3])} for p in pictures]

    class Pictures(CalibrationDataReader):
        def __init__(self):
            self.left = iter(inputs)

        def get_next(self):
            return next(self.left, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_optimization=True)  # shapes inferred; graph as it was
        partial = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(partial), Pictures(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        quantized = onnx.load(str(partial))
    # ultralytics reads the class names, stride and input size from the metadata; the
    # re-shaping (detectors.model_shapes) reads the input's and output's fixed shapes.
    del quantized.metadata_props[:]
    for prop in model.metadata_props:
        entry = quantized.metadata_props.add()
        entry.key, entry.value = prop.key, prop.value
        if prop.key == "description":
            entry.value += "; convolutions in int8 by shaftwatch (detectors/quantize.py)"
    del quantized.graph.value_info[:]
    onnx.checker.check_model(quantized)
    ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])  # it loads
    partial_target = target.with_suffix(f".{os.getpid()}.part")
    onnx.save(quantized, str(partial_target))
    os.replace(partial_target, target)
    return target
