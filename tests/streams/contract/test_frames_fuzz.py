"""Fuzzing the frame path (hypothesis): whatever a camera gateway puts on ``frames``, the
vision agent's checks (FrameMeta.from_headers, check_jpeg) refuse it with a RecordError,
which sends it to dead-letters, or the camera pipeline takes it and reports it as a
corrupt frame or processes it. Nothing raises anything else, and no frame makes the
decoder allocate more than an 8K picture. Bounded by FUZZ_EXAMPLES."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.camera import CameraSpec, FrameIn, VisionPipeline
from detectors.tracking import ZoneSpec
from streams.contract.frames import FRAME_HEADERS, MAX_FRAME_PIXELS, FrameMeta, check_jpeg, jpeg_size
from streams.contract.records import RecordError
from tests.helpers import MODEL, PEOPLE, jpegs

FUZZ_EXAMPLES = {"headers": 600, "jpeg": 150}
T0 = 1795000000.0

header_values = (st.binary(max_size=40) | st.sampled_from(
    [b"", b"CAM-S01-A", b"S01", b"1795000000.0", b"nan", b"inf", b"-inf", b"1e309", b"-1", b"0", b"12",
     b"\xff\xfe", b"\x00", b"9" * 400, "摄像头".encode(), b"1795000000.0\r\nX-Injected: 1"]))
header_names = st.sampled_from([*FRAME_HEADERS, "Camera_ID", "seq ", "x"]) | st.text(max_size=12)


@settings(max_examples=FUZZ_EXAMPLES["headers"], deadline=None, database=None)
@given(st.lists(st.tuples(header_names, header_values), max_size=8))
def test_frame_headers_are_read_or_refused_with_a_reason(headers):
    try:
        meta = FrameMeta.from_headers(headers)
    except RecordError as exc:
        assert str(exc)
        return
    assert meta.captured_at == meta.captured_at and abs(meta.captured_at) != float("inf")  # finite
    assert isinstance(meta.seq, int) and isinstance(meta.camera_id, str) and isinstance(meta.site_id, str)


@pytest.fixture(scope="module")
def frame_path():
    if not (MODEL.exists() and PEOPLE.exists()):
        pytest.skip("the offline model or the real footage of ../shared is missing")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from detectors.objects import ObjectDetector
    shaft = ZoneSpec("shaft_mouth", [(0.05, 0.3), (0.95, 0.3), (0.95, 1.0), (0.05, 1.0)], ("person",), 2)
    pipeline = VisionPipeline([CameraSpec("CAM-P", "S01", [shaft])], ObjectDetector(MODEL))
    empty, person = jpegs(PEOPLE, [0, 300])
    pipeline.process([FrameIn("CAM-P", T0, 0, empty)])  # the gate has a background: mutations show motion
    return pipeline, person


@st.composite
def mutated(draw, jpeg: bytes):
    """A real frame broken as links and faulty gateways break them: cut short, bytes flipped,
    bytes inserted, its header's size changed, or random bytes after the JPEG marker."""
    data = bytearray(jpeg)
    how = draw(st.sampled_from(["truncate", "flip", "insert", "size", "random"]))
    if how == "truncate":
        return bytes(data[:draw(st.integers(0, len(data)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "insert":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    if how == "size":
        sof = data.find(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
        return bytes(data)
    return b"\xff\xd8\xff" + draw(st.binary(max_size=300))


def test_frame_bytes_are_refused_reported_or_processed(frame_path):
    pipeline, person = frame_path
    seen = {"refused": 0, "corrupt": 0, "processed": 0}

    @settings(max_examples=FUZZ_EXAMPLES["jpeg"], deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(person), st.integers(0, 10**6))
    def one(jpeg, seq):
        try:
            check_jpeg(jpeg)
        except RecordError as exc:
            assert str(exc)
            seen["refused"] += 1
            return
        width, height = jpeg_size(jpeg)
        assert 0 < width * height <= MAX_FRAME_PIXELS
        _, errors, _ = pipeline.process([FrameIn("CAM-P", T0 + seq, seq, jpeg)])
        if errors:
            assert [i for i, _ in errors] == [0] and "corrupt frame" in errors[0][1]
            seen["corrupt"] += 1
        else:
            seen["processed"] += 1

    one()
    # Every kind of outcome came up: the checks refuse, the decoder reports, the rest goes through.
    assert all(seen.values()), seen
