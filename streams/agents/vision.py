"""Vision agent: consumes ``frames`` (raw JPEG keyed by camera id, FrameMeta in headers)."""

from __future__ import annotations

from ..app import app, config
from ..dead_letters import refusing
from ..metrics import RECORDS_ACCEPTED, RECORDS_IN
from ..records import FRAMES, FrameMeta, RecordError, check_jpeg
from ..tables import camera_activity, touch
from ..topics import frames_topic

SOURCE = "vision-agent"
_camera_sites = {c.id: c.site_id for c in config.cameras.cameras}


def accept_frame(headers, value: bytes | None) -> FrameMeta:
    """Check a frame's headers, its camera and that the bytes look like a JPEG."""
    meta = FrameMeta.from_headers(headers)
    expected_site = _camera_sites.get(meta.camera_id)
    if expected_site is None:
        raise RecordError(f"unknown camera {meta.camera_id!r} (not in cameras.yaml)")
    if meta.site_id != expected_site:
        raise RecordError(f"camera {meta.camera_id} belongs to site {expected_site}, header says {meta.site_id}")
    check_jpeg(value)
    return meta


@app.agent(frames_topic, name="vision-agent")
async def vision_agent(stream):
    async for event in stream.events():
        RECORDS_IN.labels(topic=FRAMES.name).inc()
        async with refusing(event, SOURCE):
            meta = accept_frame(event.message.headers or [], event.value)
            RECORDS_ACCEPTED.labels(topic=FRAMES.name).inc()
            touch(camera_activity, meta.camera_id, meta.captured_at, last_seq=meta.seq)
