"""A camera's frames on local disk while its gateway cannot reach Kafka.

Camera links at mine areas drop. A gateway that cannot hand a frame to Kafka writes it here,
one file per frame named by its capture time and number, and forwards the oldest first
when the link is back, with the capture time it had (the detectors and the fusion window
judge a frame by when it was captured, not when it arrived). While frames wait here, new
ones join the queue behind them, so a camera's frames reach Kafka in capture order.

Bounded twice, as a small edge box needs: by size (``max_bytes`` per camera) and by age
(``max_age_s``); the oldest go first, counted in ``shaftwatch_camera_spool_dropped_total``
by reason. The files survive a restart of the gateway: a new one forwards what the old one
left.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, NamedTuple

from prometheus_client import Counter, Gauge

from streams.contract.frames import FrameMeta
from streams.logs import ids

log = logging.getLogger("shaftwatch.camera_gateway")

CAMERA_SPOOL_FRAMES = Gauge("shaftwatch_camera_spool_frames", "Frames waiting on local disk for Kafka", ["camera_id"])
CAMERA_SPOOL_DROPPED_TOTAL = Counter("shaftwatch_camera_spool_dropped_total",
                                     "Spooled frames dropped, oldest first, by reason (size, age)",
                                     ["camera_id", "reason"])


class Spooled(NamedTuple):
    meta: FrameMeta
    path: Path
    size: int

    def jpeg(self) -> bytes:
        return self.path.read_bytes()


class FrameSpool:
    """One camera's spooled frames, oldest first."""

    def __init__(self, directory: Path, camera_id: str, site_id: str, max_bytes: int, max_age_s: float,
                 clock: Callable[[], float] = time.time):
        self.dir = Path(directory) / camera_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.camera_id, self.site_id = camera_id, site_id
        self.max_bytes, self.max_age_s, self.clock = max_bytes, max_age_s, clock
        self.frames: list[Spooled] = []
        for path in sorted(self.dir.glob("*.jpg")):  # what an earlier gateway left
            meta = self._meta(path.name)
            if meta is None:
                log.warning("spool file not ours, left alone", extra=ids(path=str(path)))
                continue
            self.frames.append(Spooled(meta, path, path.stat().st_size))
        for stale in self.dir.glob("*.tmp"):  # a write cut short by a crash
            stale.unlink(missing_ok=True)
        self.bytes = sum(f.size for f in self.frames)
        self._bounded()

    def __len__(self) -> int:
        return len(self.frames)

    def put(self, meta: FrameMeta, jpeg: bytes) -> None:
        """Keep a frame (a frame sent and failed may be older than some kept: sorted in)."""
        path = self.dir / self._name(meta)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)  # a crash leaves a whole file or none
        entry = Spooled(meta, path, len(jpeg))
        if self.frames and self.frames[-1].meta.captured_at > meta.captured_at:
            self.frames = sorted([*self.frames, entry], key=lambda f: f.path.name)
        else:
            self.frames.append(entry)
        self.bytes += entry.size
        self._bounded()

    def oldest(self, count: int) -> list[Spooled]:
        self._bounded()
        return self.frames[:count]

    def remove(self, entry: Spooled) -> None:
        """A frame Kafka acknowledged."""
        if entry in self.frames:
            self.frames.remove(entry)
            self.bytes -= entry.size
            entry.path.unlink(missing_ok=True)
        CAMERA_SPOOL_FRAMES.labels(camera_id=self.camera_id).set(len(self.frames))

    def _bounded(self) -> None:
        horizon = self.clock() - self.max_age_s
        while self.frames and (self.bytes > self.max_bytes or self.frames[0].meta.captured_at < horizon):
            reason = "size" if self.bytes > self.max_bytes else "age"
            dropped = self.frames.pop(0)
            self.bytes -= dropped.size
            dropped.path.unlink(missing_ok=True)
            CAMERA_SPOOL_DROPPED_TOTAL.labels(camera_id=self.camera_id, reason=reason).inc()
        CAMERA_SPOOL_FRAMES.labels(camera_id=self.camera_id).set(len(self.frames))

    @staticmethod
    def _name(meta: FrameMeta) -> str:
        # Microseconds since the epoch, zero-padded: name order is capture order.
        return f"{round(meta.captured_at * 1_000_000):020d}-{meta.seq:012d}.jpg"

    def _meta(self, name: str) -> FrameMeta | None:
        stem = name.removesuffix(".jpg")
        micros, _, seq = stem.partition("-")
        if not (micros.isdigit() and seq.isdigit()):
            return None
        return FrameMeta(self.camera_id, self.site_id, int(micros) / 1_000_000, int(seq))
