"""A fixed-square ONNX detector, re-shaped for wide images.

The offline NanoDet takes a fixed 416 × 416 input. A 16:9 camera frame shrunk to fit is
416 × 234, and ultralytics pads the rest: 44 % of every whole-frame pass is spent on grey
padding; and a 1080p frame seen at the mid level (416 px tall, 740 wide) took two 416-px
squares that overlap. The network is convolutional and would take any size divisible by its
largest stride (32); only its box decoding is tied to the square grid: the anchor centres
of each stride are constants, and the box distributions are reshaped by a constant anchor
count. ``wide_variant`` rewrites exactly those constants for a rows × columns input (each
rounded up to the stride: ``input_shape``) and stores the model in a cache folder, with the
metadata ultralytics reads. It does so only for the layout that
``shared/models/build`` makes (YOLOv8-style output [1, 4 + classes, anchors], anchor
centres (i + 0.5) × stride per stride 8/16/32); any other file is left alone (None), and a
standard ultralytics .pt model needs none of this: it already runs frames at their shape.
The boxes of the variant are those of the square model on the same pixels (test).
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
from pathlib import Path

STRIDES = (8, 16, 32)


def _up(value: float, stride: int) -> int:
    return -(-round(value) // stride) * stride


def padded_height(width: int, height: int, side: int, stride: int = 32) -> int:
    """The input height that holds a width × height frame shrunk to ``side`` wide."""
    return min(side, _up(height * side / width, stride))


def input_shape(width: int, height: int, side: int, stride: int = 32) -> tuple[int, int]:
    """(rows, columns) of the model input that runs a width × height image with the least
    padding: an image wider than ``side`` but no taller, and at most twice as wide (a mid
    view of a wide frame, already at model scale), runs at its own size rounded up to the
    stride; any other wide image is shrunk to ``side`` wide; a tall or square one runs on
    the square input."""
    if width <= height:
        return side, side
    if side < width <= 2 * side and height <= side:
        return _up(height, stride), _up(width, stride)
    return padded_height(width, height, side, stride), side


def wide_variant(model_path: Path, height: int, cache_dir: Path | None = None,
                 width: int | None = None) -> Path | None:
    """The model at ``model_path`` (a fixed side × side input) re-shaped to height × width
    (width: the side unless given); None when its layout is not the one this knows. Built
    once per file and shape."""
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    cache_dir = cache_dir or Path(tempfile.gettempdir()) / "shaftwatch-models"
    target = cache_dir / f"{model_path.stem}-{digest}-{height}x{width or 'side'}.onnx"
    if target.is_file():
        return target
    model = _reshaped(model_path, height, width)
    if model is None:
        return None
    import onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")  # several workers may build it at once
    onnx.save(model, str(partial))
    os.replace(partial, target)
    return target


def _reshaped(model_path: Path, height: int, width: int | None):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        return None
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[2] != dims[3] or dims[2] % STRIDES[-1]:
        return None
    side = dims[2]
    width = width or side
    if height % STRIDES[-1] or width % STRIDES[-1] or (height, width) == (side, side):
        return None
    old = {s: (side // s, side // s) for s in STRIDES}  # (rows, columns) of anchors per stride
    new = {s: (height // s, width // s) for s in STRIDES}
    out_dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    if len(out_dims) != 3 or out_dims[2] != sum(r * c for r, c in old.values()):
        return None

    def centres(rows: int, columns: int, stride: int):
        ys, xs = np.divmod(np.arange(rows * columns), columns)
        return ((xs + 0.5) * stride).astype(np.float32), ((ys + 0.5) * stride).astype(np.float32)

    replaced = 0
    by_count = {rows * columns: s for s, (rows, columns) in old.items()}
    reshape_shapes = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        if value.ndim == 2 and value.shape[0] == 1 and value.shape[1] in by_count:
            stride = by_count[value.shape[1]]
            cx, cy = centres(*old[stride], stride)
            nx, ny = centres(*new[stride], stride)
            if np.allclose(value[0], cx):
                init.CopyFrom(numpy_helper.from_array(nx[None], init.name))
            elif np.allclose(value[0], cy):
                init.CopyFrom(numpy_helper.from_array(ny[None], init.name))
            else:
                return None
            replaced += 1
        elif init.name in reshape_shapes and value.ndim == 1 and len(value) >= 2 and int(value[1]) in by_count:
            stride = by_count[int(value[1])]
            value = value.copy()
            value[1] = new[stride][0] * new[stride][1]
            init.CopyFrom(numpy_helper.from_array(value, init.name))
            replaced += 1
    if replaced != 3 * len(STRIDES):  # x and y centres and one reshape per stride, no more, no less
        return None
    graph.input[0].type.tensor_type.shape.dim[2].dim_value = height
    graph.input[0].type.tensor_type.shape.dim[3].dim_value = width
    graph.output[0].type.tensor_type.shape.dim[2].dim_value = sum(r * c for r, c in new.values())
    del graph.value_info[:]  # the square model's intermediate shapes
    for prop in model.metadata_props:
        if prop.key == "imgsz":
            prop.value = str([height, width])
        elif prop.key == "description":
            prop.value += f"; re-shaped to {height}x{width} by shaftwatch (detectors/model_shapes.py)"
    if "names" not in {p.key for p in model.metadata_props}:
        return None
    ast.literal_eval(next(p.value for p in model.metadata_props if p.key == "names"))  # ultralytics reads it so
    onnx.checker.check_model(model)
    return model
