"""detectors.quantize through `shaftwatch model quantize`: the int8 copy of the offline
detector finds what the float model finds, and bad requests are refused in words."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

from detectors.quantize import calibration_pictures, int8_copy
from tests.helpers import CARS, MODEL, PEOPLE, REPO, SHARED_FOOTAGE, jpegs, same_boxes

needs_footage = pytest.mark.skipif(not SHARED_FOOTAGE,
                                   reason="the offline model or the real footage of ../shared is missing")


def quantize(*args: str) -> subprocess.CompletedProcess:
    # A process of its own, as the command runs: this one may hold the detector's shared
    # ONNX Runtime pool, under which calibration cannot run (test below).
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", "model", "quantize", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "nanodet-int8.onnx"
    # Calibrated on the car video only: the person frames compared below are pictures the
    # calibration never saw.
    done = quantize("--from", str(MODEL), "--frames", str(CARS), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "convolutions in int8, calibrated on 48 pictures" in done.stdout
    assert f"model_path: {out}" in done.stdout
    return out


@needs_footage
def test_the_int8_copy_finds_what_the_float_model_finds(int8_model):
    from ultralytics import YOLO

    float_model, int8 = YOLO(str(MODEL), task="detect"), YOLO(str(int8_model), task="detect")
    matched = 0
    for jpeg in jpegs(PEOPLE, [100, 300, 400, 600, 800, 1000, 1100, 1300]) + jpegs(CARS, [50, 250]):
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        matched += same_boxes(float_model, int8, frame)
    assert matched >= 8  # the person in each of the eight frames, at least


@needs_footage
def test_only_the_convolutions_are_int8(int8_model):
    graph = onnx.load(str(int8_model)).graph
    int8_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and len(int8_weights) >= len(convs)  # every convolution's weights, per channel
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    produced_by = {out: n.op_type for n in graph.node for out in n.output}
    read_by = {name: n.op_type for n in graph.node for name in n.input}
    # The tail (the box distributions' softmax, the class sigmoids, the box decoding) reads
    # and writes float: a score of 0.3 and a box edge at 400 px cannot share an 8-bit scale.
    tail = [n for n in graph.node if n.op_type in {"Softmax", "Sigmoid", "ReduceSum"}]
    assert len(tail) == 9  # three strides: softmax and sum of the distributions, class sigmoids
    tail += [n for n in graph.node if graph.output[0].name in n.output]  # boxes and scores joined
    for node in tail:
        assert all(produced_by.get(name) != "DequantizeLinear" for name in node.input), node.name
        assert read_by.get(node.output[0]) != "QuantizeLinear", node.name
    meta = {p.key: p.value for p in onnx.load(str(int8_model)).metadata_props}
    assert "names" in meta and "int8" in meta["description"]  # ultralytics reads the names


@needs_footage
def test_the_detector_runs_the_int8_copy_on_wide_frames(int8_model):
    from detectors.objects import ObjectDetector

    detector = ObjectDetector(int8_model)
    assert detector.reshapable  # the re-shaping for 16:9 frames recognises the int8 graph
    frame = cv2.imdecode(np.frombuffer(jpegs(PEOPLE, [400])[0], np.uint8), cv2.IMREAD_COLOR)
    assert [d.label for d in detector.detect([frame])[0]].count("person") == 1


def test_calibration_takes_an_even_share_of_each_video_and_of_the_pictures(tmp_path):
    picture = np.full((90, 160, 3), 128, np.uint8)
    for k in range(10):
        cv2.imwrite(str(tmp_path / f"{k:02d}.jpg"), picture)
    (tmp_path / "notes.txt").write_text("not a picture")
    if not SHARED_FOOTAGE:
        assert len(calibration_pictures([tmp_path], 6)) == 6
        return
    pictures = calibration_pictures([tmp_path, CARS, PEOPLE], 12)
    assert len(pictures) == 12
    assert sum(p.shape == picture.shape for p in pictures) == 4  # the loose pictures' share


def test_bad_requests_are_refused_in_words(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibration_pictures([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no pictures or videos could be read"):
        calibration_pictures([tmp_path / "empty"])
    weights = tmp_path / "yolo11n.pt"
    weights.write_bytes(b"not really")
    done = quantize("--from", str(weights), "--frames", str(tmp_path))
    assert done.returncode == 1 and "only ONNX models are quantized" in done.stderr


@needs_footage
def test_calibration_is_refused_where_a_detector_holds_the_shared_pool(tmp_path):
    from detectors.objects import ObjectDetector

    ObjectDetector(MODEL)
    with pytest.raises(RuntimeError, match="a process of its own"):
        int8_copy(MODEL, tmp_path / "int8.onnx", [np.zeros((416, 416, 3), np.uint8)])
