"""detectors.model_shapes: the offline detector re-shaped for wide frames finds what the
square one finds on the same pixels, and a model it does not know is left alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.boxes import iou
from detectors.model_shapes import input_shape, padded_height, wide_variant
from detectors.objects import DetectorRules, FrameJob, ObjectDetector
from tests.helpers import CARS, MODEL, PEOPLE, SHARED_FOOTAGE, jpegs, same_boxes

needs_footage = pytest.mark.skipif(not SHARED_FOOTAGE,
                                   reason="the offline model or the real footage of ../shared is missing")


def test_the_input_height_holds_the_frame_at_model_width():
    assert padded_height(1920, 1080, 416) == 256  # 234 rows of picture
    assert padded_height(768, 432, 416) == 256
    assert padded_height(768, 576, 416) == 320  # 4:3: 312 rows
    assert padded_height(416, 416, 416) == 416


def test_an_image_up_to_twice_the_input_wide_runs_at_its_own_size():
    assert input_shape(1920, 1080, 416) == (256, 416)  # a whole frame: shrunk to the input's width
    assert input_shape(416, 234, 416) == (256, 416)
    assert input_shape(626, 352, 416) == (352, 640)  # a 1080p frame's mid view, already at model scale
    assert input_shape(739, 416, 416) == (416, 768)
    assert input_shape(1000, 416, 416) == (192, 416)  # wider than twice: shrunk
    assert input_shape(416, 416, 416) == input_shape(300, 600, 416) == (416, 416)


@needs_footage
def test_a_wide_frame_gets_the_boxes_of_the_square_model(tmp_path):
    from ultralytics import YOLO

    variant = wide_variant(MODEL, 256, tmp_path)
    assert variant is not None and wide_variant(MODEL, 256, tmp_path) == variant  # built once
    square, wide = YOLO(str(MODEL), task="detect"), YOLO(str(variant), task="detect")
    matched = 0
    for jpeg in jpegs(PEOPLE, [100, 300, 400, 600, 800, 1000, 1100, 1300]) + jpegs(CARS, [100, 200, 300]):
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        small = cv2.resize(frame, (416, round(frame.shape[0] * 416 / frame.shape[1])), interpolation=cv2.INTER_AREA)
        matched += same_boxes(square, wide, small)
    assert matched >= 8  # the person in each of the eight frames, at least
    assert wide.predictor.args.imgsz == [256, 416]


@needs_footage
def test_the_detector_runs_wide_images_on_the_wide_model(tmp_path):
    detector = ObjectDetector(MODEL, shapes_dir=tmp_path)
    # the 16:9 whole-frame copy is loaded at start, not by the first frame with motion
    assert set(detector.by_shape) == {(416, 416), (256, 416)} and detector.by_shape[(256, 416)].predictor
    assert detector.model_for(1920, 1080) is not detector.model  # 416 x 234 of picture
    assert detector.model_for(416, 416) is detector.model and detector.model_for(300, 600) is detector.model
    assert detector.model_for(626, 352) not in (detector.model, detector.model_for(1920, 1080))
    assert set(detector.by_shape) == {(416, 416), (256, 416), (352, 640)}
    # every session runs on the process's one thread pool: pools of their own spun against each other
    sessions = [model.predictor.model.backend.session for model in detector.by_shape.values()]
    assert [s.get_session_options().use_per_session_threads for s in sessions] == [False] * 3
    frame = cv2.imdecode(np.frombuffer(jpegs(PEOPLE, [300])[0], np.uint8), cv2.IMREAD_COLOR)
    wide, tile = cv2.resize(frame, (416, 234)), frame[:416, 200:616]
    found = detector.run([wide, tile, wide], 0.3)
    assert [d.label for d in found[0]].count("person") == 1 and found[0] == found[2]
    assert "person" in [d.label for d in found[1]]  # the tile, on the square model, in between
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(frame, (1920, 1080)))
    crowd = [(x, 450, x + 30, 520) for x in range(50, 1900, 120)]  # far people across the frame
    (frame_found,) = detector.detect_frames([FrameJob(jpeg.tobytes(), crowd, DetectorRules())])
    assert [(c.level, c.box, c.cost) for c in frame_found.crops] == [("mid", (0, 0, 1920, 1080), 2)]  # one wide view
    assert "person" in [d.label for d in frame_found.detections]


@needs_footage
def test_the_shapes_a_camera_size_needs_are_loaded_before_its_first_crowded_frame(tmp_path):
    detector = ObjectDetector(MODEL, shapes_dir=tmp_path)
    detector.load_shapes_for([(768, 432), (768, 432)])
    assert set(detector.by_shape) == {(416, 416), (256, 416)}  # a small camera's whole view covers it
    detector.load_shapes_for([(1920, 1080), (768, 432)])
    assert set(detector.by_shape) == {(416, 416), (256, 416), (352, 640)}  # a 1080p camera's mid view
    frame = cv2.imdecode(np.frombuffer(jpegs(PEOPLE, [300])[0], np.uint8), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(frame, (1920, 1080)))
    loaded = dict(detector.by_shape)
    crowd = [(x, 450, x + 30, 520) for x in range(50, 1900, 120)]  # far people across the frame
    (found,) = detector.detect_frames([FrameJob(jpeg.tobytes(), crowd, DetectorRules())])
    assert [c.level for c in found.crops] == ["mid"] and detector.by_shape == loaded  # nothing more to load
    square = ObjectDetector(MODEL, shapes_dir=tmp_path, wide_inputs=False)
    square.load_shapes_for([(1920, 1080)])
    assert set(square.by_shape) == {(416, 416)}  # a detector that runs squares only loads none


def _boxes(model, image, conf):
    b = model.predict(image, verbose=False, conf=conf)[0].boxes
    return list(zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist()))


@needs_footage
def test_a_mid_view_up_to_twice_the_input_wide_gets_the_boxes_of_the_square_model_on_its_parts(tmp_path):
    from ultralytics import YOLO

    variant = wide_variant(MODEL, 416, tmp_path, width=768)  # 416 rows: each part fills the square input
    square, wide = YOLO(str(MODEL), task="detect"), YOLO(str(variant), task="detect")
    matched = 0
    for jpeg in jpegs(PEOPLE, [100, 300, 600, 800, 1100, 1300]):
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        view = cv2.resize(frame, (739, 416), interpolation=cv2.INTER_AREA)  # a mid view's shape
        found = _boxes(wide, view, 0.2)
        for x0 in (0, 739 - 416):
            for label, score, box in _boxes(square, view[:, x0:x0 + 416], 0.3):
                inner = box[0] > 4 and box[2] < 412  # not cut by the half's edge
                if label != 0 or not inner:
                    continue
                moved = (box[0] + x0, box[1], box[2] + x0, box[3])
                same = [s for c, s, o in found if c == label and iou(moved, tuple(o)) >= 0.85]
                assert same and abs(max(same) - score) < 0.1, (score, moved, found)
                matched += 1
    assert matched >= 6
    assert wide.predictor.args.imgsz == [416, 768]


@needs_footage
def test_a_detector_whose_model_cannot_be_re_shaped_plans_squares(tmp_path, monkeypatch):
    import detectors.objects

    monkeypatch.setattr(detectors.objects, "wide_variant", lambda *args, **kwargs: None)  # as for another layout
    detector = ObjectDetector(MODEL, shapes_dir=tmp_path)
    assert not detector.reshapable and detector.model_for(1920, 1080) is detector.model
    frame = cv2.resize(cv2.imdecode(np.frombuffer(jpegs(PEOPLE, [300])[0], np.uint8), cv2.IMREAD_COLOR), (1920, 1080))
    ok, jpeg = cv2.imencode(".jpg", frame)
    crowd = [(x, 450, x + 30, 520) for x in range(50, 1900, 120)]  # far people across the frame
    (found,) = detector.detect_frames([FrameJob(jpeg.tobytes(), crowd, DetectorRules())])
    assert [(c.level, c.box[2] - c.box[0]) for c in found.crops] == [("mid", 1080), ("mid", 1080)]  # two squares


def test_a_model_of_another_layout_is_left_alone(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 84, 3549])
    graph = helper.make_graph([helper.make_node("ConstantOfShape", ["shape"], ["output0"])], "other",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 416, 416])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 3549])],
                              initializer=[shape])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert wide_variant(path, 256, tmp_path / "shapes") is None
    assert not (tmp_path / "shapes").exists()
