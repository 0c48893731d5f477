"""Camera gateway: OpenCV source -> sampled, resized JPEG -> ``frames`` (keyed by camera id).

One gateway process serves many cameras, one asyncio task each. Reading and encoding are
blocking OpenCV calls and run in threads, so one slow camera never stalls the others. A
lost live stream is reopened with exponential backoff (counted in metrics). Frames are
never buffered without bound in memory: at most MAX_IN_FLIGHT per camera wait for Kafka.
When Kafka cannot take more (a dropped link, a broker down), frames go to the camera's
spool on local disk (``streams.edge.frame_spool``: bounded by size and age) and are
forwarded, oldest first and with their capture times, once it can; without a spool they
are skipped (and counted).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import cv2
import numpy as np
from prometheus_client import Counter

from streams.config import Camera
from streams.contract.frames import FrameMeta
from streams.contract.topics import FRAMES
from streams.edge.frame_spool import FrameSpool, Spooled
from streams.kafka.producer import KafkaSink
from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.logs import ids

log = logging.getLogger("shaftwatch.camera_gateway")

CAMERA_RECONNECTS_TOTAL = Counter("shaftwatch_camera_reconnects_total", "Times a camera stream was reopened", ["camera_id"])
CAMERA_FRAMES_SKIPPED_TOTAL = Counter("shaftwatch_camera_frames_skipped_total",
                         "Frames not sent because the previous ones were still in flight", ["camera_id"])

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MAX_IN_FLIGHT = 4  # per camera; beyond this, frames are spooled (or skipped) rather than queued in memory


class FrameReader(Protocol):
    def read(self) -> np.ndarray | None:
        """The next sampled frame (BGR), or None when the source is lost or ended."""

    def close(self) -> None: ...


class VideoReader:
    """A video file or a live URL through OpenCV, sampled down to the camera's rate."""

    def __init__(self, source: str, fps: float, loop: bool):
        self.source = source
        self.loop = loop
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise OSError(f"cannot open video source {source!r}")
        native = self.capture.get(cv2.CAP_PROP_FPS) or fps
        # Skip frames so that each read() advances the video by one sampling period.
        self.step = max(1, round(native / fps))

    def read(self) -> np.ndarray | None:
        for _ in range(self.step - 1):
            if not self.capture.grab():
                break
        ok, frame = self.capture.read()
        if not ok and self.loop:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


def natural_key(path: Path) -> tuple:
    """Sort key that reads the numbers in a name as numbers: frame2 before frame10, as a
    camera or an NVR export numbers its pictures (name order put 1, 10, 11 ... before 2)."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts if p)


class ImageFolderReader:
    """A folder of still images in capture order, looping. Capture order is the order of the
    numbers in their names (natural sort: 2.jpg before 10.jpg, cam_20240101_0900 before
    cam_20240101_1000), which survives copying, where file times often do not."""

    def __init__(self, folder: Path):
        self.paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not self.paths:
            raise OSError(f"no images in {folder}")
        self.index = 0

    def read(self) -> np.ndarray | None:
        path = self.paths[self.index % len(self.paths)]
        self.index += 1
        return cv2.imread(str(path))

    def close(self) -> None:
        pass


def open_reader(source: str, fps: float) -> FrameReader:
    path = Path(source)
    if path.is_dir():
        return ImageFolderReader(path)
    if path.exists():
        return VideoReader(str(path), fps, loop=True)
    if "://" in source:
        return VideoReader(source, fps, loop=False)
    raise OSError(f"camera source {source!r} is neither a URL, a video file nor an image folder")


def encode_jpeg(frame: np.ndarray, width: int, height: int, quality: int) -> bytes:
    if frame.shape[1] != width or frame.shape[0] != height:
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class Pending(NamedTuple):
    """A live frame handed to Kafka and not yet acknowledged."""

    future: asyncio.Future
    meta: FrameMeta
    jpeg: bytes


class CameraStream:
    """Sample one camera at its configured rate and produce each frame to ``frames``; with a
    spool, keep on disk what Kafka cannot take and forward it when it can."""

    def __init__(self, camera: Camera, open_source: Callable[[], FrameReader], topic: str = FRAMES.name,
                 clock: Callable[[], float] = time.time, max_backoff_s: float = 30.0,
                 spool: FrameSpool | None = None):
        self.camera = camera
        self.topic = topic
        self.open_source = open_source
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.spool = spool
        self.seq = 0
        self.sent = 0  # live frames handed to Kafka
        self.forwarded = 0  # spooled frames Kafka acknowledged later

    async def _open(self, stop: asyncio.Event) -> FrameReader | None:
        backoff = 1.0
        while not stop.is_set():
            try:
                return await asyncio.to_thread(self.open_source)
            except OSError as exc:
                CAMERA_RECONNECTS_TOTAL.labels(camera_id=self.camera.id).inc()
                log.warning("camera source unavailable", extra=ids(camera_id=self.camera.id, error=str(exc),
                                                                    retry_in_s=backoff))
                await _pause(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        return None

    async def run(self, sink: KafkaSink, stop: asyncio.Event, max_frames: int | None = None) -> None:
        cam = self.camera
        period = 1.0 / cam.fps
        pending: list[Pending] = []
        forwarder = asyncio.create_task(self._forward(sink, stop)) if self.spool is not None else None
        reader = await self._open(stop)
        next_due = time.monotonic()
        try:
            while reader is not None and not stop.is_set() and (max_frames is None or self.seq < max_frames):
                frame = await asyncio.to_thread(reader.read)
                if frame is None:
                    reader.close()
                    CAMERA_RECONNECTS_TOTAL.labels(camera_id=cam.id).inc()
                    log.warning("camera stream lost; reopening", extra=ids(camera_id=cam.id))
                    reader = await self._open(stop)
                    continue
                captured_at = self.clock()
                pending = self._settle(pending)
                if self.spool is None and len(pending) >= MAX_IN_FLIGHT:
                    CAMERA_FRAMES_SKIPPED_TOTAL.labels(camera_id=cam.id).inc()
                else:
                    jpeg = await asyncio.to_thread(encode_jpeg, frame, cam.width, cam.height, cam.jpeg_quality)
                    self.seq += 1
                    meta = FrameMeta(cam.id, cam.site_id, captured_at, self.seq)
                    if self.spool is not None and (len(self.spool) or len(pending) >= MAX_IN_FLIGHT):
                        self.spool.put(meta, jpeg)  # behind the frames already waiting: capture order kept
                    else:
                        await self._send_live(sink, meta, jpeg, pending)
                next_due += period
                delay = next_due - time.monotonic()
                if delay < -period:  # fell behind (slow source): do not try to catch up in a burst
                    next_due = time.monotonic()
                elif delay > 0:
                    await _pause(stop, delay)
        finally:
            if reader is not None:
                reader.close()
            if pending:
                await asyncio.wait([p.future for p in pending], timeout=30)
                self._settle(pending)
            if forwarder is not None:
                forwarder.cancel()
                await asyncio.gather(forwarder, return_exceptions=True)

    async def _send_live(self, sink: KafkaSink, meta: FrameMeta, jpeg: bytes, pending: list[Pending]) -> None:
        try:
            future = await sink.send(self.topic, self.camera.id, jpeg, headers=meta.headers(), wait=False)
        except Exception as exc:  # Kafka refused it at once (no metadata, a closed producer)
            self._unsent(meta, jpeg, exc)
            return
        pending.append(Pending(future, meta, jpeg))
        self.sent += 1

    def _settle(self, pending: list[Pending]) -> list[Pending]:
        """The frames still in flight; those Kafka failed to take go to the spool."""
        still = []
        for p in pending:
            if not p.future.done():
                still.append(p)
            elif p.future.cancelled() or p.future.exception() is not None:
                self._unsent(p.meta, p.jpeg, None if p.future.cancelled() else p.future.exception())
        return still

    def _unsent(self, meta: FrameMeta, jpeg: bytes, error: BaseException | None) -> None:
        if self.spool is not None:
            self.spool.put(meta, jpeg)
        else:
            CAMERA_FRAMES_SKIPPED_TOTAL.labels(camera_id=self.camera.id).inc()
            log.warning("frame not delivered", extra=ids(camera_id=self.camera.id, seq=meta.seq, error=str(error)))

    async def _forward(self, sink: KafkaSink, stop: asyncio.Event) -> None:
        """Forward spooled frames, oldest first, a few in flight at a time; wait and try again
        (with backoff) while Kafka does not acknowledge them."""
        backoff = 1.0
        while not stop.is_set():
            batch: list[Spooled] = self.spool.oldest(MAX_IN_FLIGHT)
            if not batch:
                await _pause(stop, 0.2)
                continue
            try:
                futures = [await sink.send(self.topic, self.camera.id, f.jpeg(), headers=f.meta.headers(), wait=False)
                           for f in batch]
                results = await asyncio.gather(*futures, return_exceptions=True)
            except Exception as exc:
                results = [exc] * len(batch)
            delivered = [f for f, r in zip(batch, results) if not isinstance(r, BaseException)]
            for f in delivered:
                self.spool.remove(f)
            self.forwarded += len(delivered)
            if len(delivered) < len(batch):
                log.warning("Kafka does not take this camera's frames; they wait on disk", extra=ids(
                    camera_id=self.camera.id, spooled=len(self.spool), retry_in_s=backoff))
                await _pause(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            else:
                backoff = 1.0


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when asked to stop."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def run_gateway(cameras: list[CameraStream], bootstrap: str, stop: asyncio.Event,
                      security: KafkaSecurity = PLAINTEXT) -> None:
    async with KafkaSink(bootstrap, "camera-gateway", security=security) as sink:
        await asyncio.gather(*(c.run(sink, stop) for c in cameras))
