"""Camera gateway on real footage: sampled, resized JPEG frames keyed by camera, with headers."""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest

from streams.config import Camera
from streams.contract.frames import FrameMeta, check_jpeg
from streams.edge.camera_gateway import (
    CAMERA_RECONNECTS_TOTAL, CameraStream, ImageFolderReader, VideoReader, encode_jpeg, open_reader,
)
from streams.kafka.producer import KafkaSink
from tests.helpers import REPO, read_all

FOOTAGE = REPO.parent / "shared" / "data" / "intel_sample_videos"
CAR_VIDEO = FOOTAGE / "car-detection.mp4"
needs_footage = pytest.mark.skipif(not CAR_VIDEO.exists(), reason=f"real footage not found at {FOOTAGE}")


def camera(source: str, **kw) -> Camera:
    return Camera(id="CAM-T", site_id="S01", source=source, zones=[{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                  **kw)


@needs_footage
def test_video_is_sampled_at_the_camera_rate():
    reader = VideoReader(str(CAR_VIDEO), fps=2.5, loop=True)  # the file is 12.5 fps: every 5th frame
    assert reader.step == 5
    frames = [reader.read() for _ in range(3)]
    direct = cv2.VideoCapture(str(CAR_VIDEO))
    expected = []
    for i in range(15):
        ok, f = direct.read()
        if i % 5 == 4:
            expected.append(f)
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected))


def test_image_folder_and_bad_sources(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((40, 60, 3), i * 100, np.uint8))
    reader = open_reader(str(tmp_path), fps=1)
    assert isinstance(reader, ImageFolderReader)
    assert [int(reader.read().mean()) // 50 for _ in range(3)] == [0, 2, 0]
    with pytest.raises(OSError, match="neither a URL"):
        open_reader(str(tmp_path / "missing.mp4"), fps=1)
    jpeg = encode_jpeg(np.zeros((100, 200, 3), np.uint8), 64, 32, 70)
    check_jpeg(jpeg)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (32, 64, 3)


def test_image_folder_is_served_in_capture_order(tmp_path):
    """Pictures numbered by a camera or an NVR export come out in capture order (2 before
    10, not name order's 1, 10, 100, 11, 2 ...), whatever order the folder lists them in."""
    taken = [1, 2, 3, 9, 10, 11, 20, 99, 100]
    for n in reversed(taken):  # written newest first, so file times and listing order say nothing
        cv2.imwrite(str(tmp_path / f"cam01_{n}.png"), np.full((8, 8, 3), n * 2, np.uint8))
    reader = open_reader(str(tmp_path), fps=1)
    assert [int(reader.read()[0, 0, 0]) // 2 for _ in taken] == taken
    assert int(reader.read()[0, 0, 0]) // 2 == 1  # and round again


@needs_footage
@pytest.mark.broker
def test_gateway_produces_frames_with_headers(kafka_bootstrap):
    topic = f"gw-{time.time_ns()}"
    from aiokafka.admin import NewTopic

    from streams.kafka.admin import ensure_topics
    asyncio.run(ensure_topics(kafka_bootstrap, [NewTopic(topic, 1, 1)]))
    cam = camera(str(CAR_VIDEO), fps=10, width=384, height=216, jpeg_quality=70)
    stream = CameraStream(cam, lambda: open_reader(cam.source, cam.fps), topic=topic)

    async def run():
        async with KafkaSink(kafka_bootstrap, "test-gateway") as sink:
            await stream.run(sink, asyncio.Event(), max_frames=6)

    started = time.time()
    asyncio.run(run())
    records = asyncio.run(read_all(kafka_bootstrap, topic, expect=6))
    assert len(records) == 6
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.seq for m in metas] == [1, 2, 3, 4, 5, 6]
    assert all(r.key == b"CAM-T" and m.site_id == "S01" and started <= m.captured_at <= time.time()
               for r, m in zip(records, metas))
    image = cv2.imdecode(np.frombuffer(records[0].value, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (216, 384, 3)


def test_lost_source_is_retried_with_backoff_and_counted():
    cam = camera("rtsp://127.0.0.1:9/none")

    def broken():
        raise OSError("connection refused")

    stream = CameraStream(cam, broken, max_backoff_s=0.2)
    before = CAMERA_RECONNECTS_TOTAL.labels(camera_id="CAM-T")._value.get()

    async def run():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await stream.run(sink=None, stop=stop)

    asyncio.run(run())
    assert CAMERA_RECONNECTS_TOTAL.labels(camera_id="CAM-T")._value.get() - before >= 3
    assert stream.sent == 0
