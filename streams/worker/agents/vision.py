"""Vision agent: ``frames`` (raw JPEG keyed by camera id, FrameMeta in headers) -> motion gate,
detector, tracker (detectors.camera) -> ``signals`` keyed by site, with an annotated snapshot.

Frames are taken in micro-batches (``take_events``) so that inference is batched across
cameras; the whole batch (decode, gate, inference, tracking, snapshot encoding) runs on
one executor thread, and the event loop only awaits it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter, Gauge, Histogram

from alerts.evidence import EvidenceStore
from detectors.camera import CameraSpec, FrameIn, VisionFinding, VisionPipeline, VisionProfiles
from detectors.objects import ObjectDetector
from streams.config.cameras import camera_spec
from streams.contract.frames import FrameMeta, check_jpeg
from streams.contract.records import RecordError, Signal
from streams.logs import ids
from streams.worker.app import app, config, config_watch
from streams.worker.emit import emit
from streams.worker.intake import count_accepted, count_in, dead_letter, refusing
from streams.worker.tables import camera_activity, touch
from streams.worker.topics import frames_topic

log = logging.getLogger("shaftwatch.vision")

SOURCE = "vision-agent"
BATCH = 16
FRAMES_TOTAL = Counter("shaftwatch_frames_total", "Frames by what the pipeline did with them", ["stage"])
VISION_STAGE_SECONDS = Histogram("shaftwatch_vision_stage_seconds", "Time per batch in each vision stage", ["stage"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
MODEL_PASSES_TOTAL = Counter("shaftwatch_vision_model_passes_total",
                             "Model passes (crops) run, and those the frames wanted; more wanted than run: "
                             "the batch budget (vision.detector.passes_per_frame) ran out", ["kind"])
CAMERA_INFRARED = Gauge("shaftwatch_camera_infrared", "1 while a camera sends grey (infrared) pictures",
                        ["camera_id"])
_camera_sites = {c.id: c.site_id for c in config.cameras.cameras}
_cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision")
evidence = EvidenceStore(config.evidence_dir)


def camera_specs() -> list[CameraSpec]:
    return [camera_spec(c) for c in config.cameras.cameras]


class _Pipeline:
    """Built on the executor thread when the agent starts: loading the model takes seconds."""

    instance: VisionPipeline | None = None
    detector_error: str | None = None
    profiles_of: tuple[object, VisionProfiles] | None = None  # (thresholds in force, their vision profiles)

    @classmethod
    def profiles(cls) -> VisionProfiles:
        """The day's and night's vision rules of the thresholds in force (rebuilt after a reload)."""
        thresholds = config_watch.thresholds
        if cls.profiles_of is None or cls.profiles_of[0] is not thresholds:
            night = thresholds.night.vision if thresholds.night is not thresholds.day else None
            cls.profiles_of = (thresholds, VisionProfiles(thresholds.day.vision, night, thresholds.clock))
        return cls.profiles_of[1]

    @classmethod
    def get(cls) -> VisionPipeline:
        if cls.instance is None:
            detector = None
            try:
                detector = ObjectDetector(config.model_path, config_watch.thresholds.day.vision.detector)
                detector.load_shapes_for({(c.width, c.height) for c in config.cameras.cameras})
            except Exception as exc:  # noqa: BLE001 - reported loudly, the gate still runs
                cls.detector_error = str(exc)
                log.error("object detector unavailable; frames with motion are dead-lettered",
                          extra=ids(model_path=str(config.model_path), error=str(exc)))
            cls.instance = VisionPipeline(camera_specs(), detector, cls.profiles())
        return cls.instance


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


def run_batch(frames: list[FrameIn]):
    """On the executor thread: the pipeline, then what it found as signals, each with its
    snapshot saved under the signal's id."""
    pipeline = _Pipeline.get()
    # The thresholds in force: thresholds.yaml as now; the pipeline picks the day's or the
    # night's per frame (its local time, or its camera in infrared).
    pipeline.use_profiles(_Pipeline.profiles())
    findings, errors, stats = pipeline.process(frames)
    for camera_id in {f.camera_id for f in frames} & pipeline.infrared.keys():
        CAMERA_INFRARED.labels(camera_id=camera_id).set(1 if pipeline.infrared[camera_id] else 0)
    if pipeline.detector is None and stats.gated:
        gated_errors = [(i, f"detector unavailable: {_Pipeline.detector_error}") for i in range(len(frames))]
        return [], gated_errors, stats
    signals = []
    for f in findings:
        signal = to_signal(f)
        signal.evidence = [evidence.save_snapshot(f.camera_id, f.ts, signal.signal_id, f.snapshot)]
        signals.append(signal)
    return signals, errors, stats


def to_signal(f: VisionFinding) -> Signal:
    return Signal.of(
        identity=(f.camera_id, f.zone, ",".join(map(str, f.track_ids)), f.ts),
        site_id=f.site_id, source_kind="vision", source_id=f.camera_id,
        kind="person_at_shaft" if "person" in f.labels else "vehicle_at_shaft", ts=f.ts, strength=f.strength,
        summary=f.summary,
        details={"zone": f.zone, "labels": f.labels, "track_ids": f.track_ids, "new_track_ids": f.new_track_ids,
                 "dwell_s": round(f.dwell_s, 1), "max_score": f.max_score},
        evidence=[],
    )


@app.agent(frames_topic, name="vision-agent")
async def vision_agent(stream):
    loop = asyncio.get_running_loop()
    if config.cameras.cameras:
        # Load the model before the first frame arrives, not while frames wait behind it.
        await loop.run_in_executor(_cpu, _Pipeline.get)
    else:
        # A worker for meters and fences only: frames from unknown cameras are refused
        # anyway, so the model (seconds of CPU at start) is not loaded.
        log.info("no cameras configured; the object detector is not loaded")
    async for events in stream.take_events(BATCH, within=0.25):
        accepted, frames = [], []
        for event in events:
            count_in(event)
            async with refusing(event, SOURCE):
                meta = accept_frame(event.message.headers or [], event.value)
                frames.append(FrameIn(meta.camera_id, meta.captured_at, meta.seq, event.value))
                accepted.append((event, meta))
        if not frames:
            continue
        signals, errors, stats = await loop.run_in_executor(_cpu, run_batch, frames)
        for index, reason in errors:
            await dead_letter(accepted[index][0], SOURCE, reason)
        bad = {i for i, _ in errors}
        for i, (event, meta) in enumerate(accepted):
            if i not in bad:
                count_accepted(event)
                touch(camera_activity, meta.camera_id, meta.captured_at, last_seq=meta.seq)
        FRAMES_TOTAL.labels(stage="in").inc(stats.frames)
        FRAMES_TOTAL.labels(stage="motion_or_tracked").inc(stats.gated)
        MODEL_PASSES_TOTAL.labels(kind="run").inc(stats.passes)
        MODEL_PASSES_TOTAL.labels(kind="wanted").inc(stats.wanted)
        for stage in ("gate", "decode", "inference", "track"):
            VISION_STAGE_SECONDS.labels(stage=stage).observe(getattr(stats, f"{stage}_ms") / 1000)
        await emit(signals)
