"""`make bench-vision`: the camera pipeline on this machine, and capture-to-signal latency
through the real broker. Not a test: it prints figures. "now" runs the shipped model (the
config's model_path: the int8 NanoDet `make model` builds), and the float NanoDet it was
built from is measured beside it; "before issue 11" runs the float model, as it did then.

1. A crowded 1080p street at night (tests/sim/crowd.py: 25 real people 60-320 px tall,
   motion everywhere): model passes and full-pipeline ms per frame, and person recall and
   precision by height, for the detection stage as it was before issue 11 (per-frame crop
   cap, whole frame shrunk beyond it, old thresholds) and as it is now, at several budgets
   and with every crop padded to the model's square input.
2. Throughput on plain data (768x432 real footage), for (a) static scenes only, (b) 10% of
   frames with motion, (c) every frame with motion: frames/s and ms per frame in each
   stage, gated pipeline vs the same frames fully decoded and detected whole (ungated), and
   old vs new, and wide frames on the re-shaped model vs padded square (detectors.
   model_shapes); and how many cameras at 1 frame/s that carries.
3. Frames/s through the vision agent on the real broker (10% with motion), the shipped
   model and the float one alternating (two runs each; one with --quick).
4. p50/p99 from capture time to the signal landing in ``signals``, through the broker and
   a real worker, with cameras at 1 frame/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import yaml
from aiokafka import AIOKafkaConsumer

from detectors.camera import CameraSpec, FrameIn, VisionPipeline, VisionProfiles, VisionRules
from detectors.objects import ObjectDetector
from detectors.tracking import ZoneSpec
from streams.config import load_config
from streams.contract.frames import FrameMeta
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from streams.ops import eval_vision
from tests.bench import legacy_vision
from tests.bench.agent_rate import agent_rate, bench_broker
from tests.helpers import REPO, WorkerProcess, isolated_config
from tests.sim.crowd import write_sequence

SHARED = REPO.parent / "shared"
FLOAT_MODEL = SHARED / "models" / "nanodet-m-coco-416.onnx"  # the offline NanoDet as it ships in ../shared
PEOPLE = SHARED / "data" / "intel_sample_videos" / "one-by-one-person-detection.mp4"
ZONE = ZoneSpec("shaft_mouth", [(0.05, 0.3), (0.95, 0.3), (0.95, 1.0), (0.05, 1.0)], ("person",), 2)


def video_frames(path: Path, start: int, count: int, step: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = []
    while len(out) < count:
        for _ in range(step - 1):
            cap.grab()
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(frame)
    return out


def encode(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def scenario(cameras: int, frames_per_camera: int, motion_share: float) -> list[list[FrameIn]]:
    """Batches of one frame per camera per second; ``motion_share`` of cameras see people."""
    still = video_frames(PEOPLE, 0, 1, 1)[0]
    moving = [encode(f) for f in video_frames(PEOPLE, 240, frames_per_camera, 10)]
    rng = np.random.default_rng(0)
    busy = set(range(round(cameras * motion_share)))
    batches = []
    for k in range(frames_per_camera):
        batch = []
        for c in range(cameras):
            if c in busy:
                jpeg = moving[k]
            else:
                noisy = np.clip(still.astype(np.int16) + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
                jpeg = encode(noisy)
            batch.append(FrameIn(f"CAM-{c:03d}", 1795000000.0 + k, k, jpeg))
        batches.append(batch)
    return batches


def run_gated(detector, batches, cameras: int, rules: VisionRules) -> dict:
    pipeline = VisionPipeline([CameraSpec(f"CAM-{c:03d}", "S01", [ZONE]) for c in range(cameras)], detector, rules)
    pipeline.process(batches[0])  # backgrounds learned; not timed
    totals = {"frames": 0, "gated": 0, "passes": 0, "gate": 0.0, "decode": 0.0, "inference": 0.0, "track": 0.0}
    started = time.perf_counter()
    for batch in batches[1:]:
        for i in range(0, len(batch), 16):
            _, _, s = pipeline.process(batch[i:i + 16])
            totals["frames"] += s.frames
            totals["gated"] += s.gated
            totals["passes"] += s.passes
            for stage in ("gate", "decode", "inference", "track"):
                totals[stage] += getattr(s, f"{stage}_ms")
    totals["seconds"] = time.perf_counter() - started
    return totals


def run_ungated(detector, batches) -> dict:
    """The same frames without the gate: every one decoded in full and detected whole."""
    totals = {"frames": 0, "decode": 0.0, "inference": 0.0}
    started = time.perf_counter()
    for batch in batches[1:]:
        for i in range(0, len(batch), 16):
            chunk = batch[i:i + 16]
            t = time.perf_counter()
            images = [cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR) for f in chunk]
            totals["decode"] += (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            detector.detect(images)
            totals["inference"] += (time.perf_counter() - t) * 1000
            totals["frames"] += len(chunk)
    totals["seconds"] = time.perf_counter() - started
    return totals


def throughput(detector, float_detector, square, legacy, shipped: VisionRules, quick: bool) -> float:
    cameras, per_camera = (20, 6) if quick else (40, 11)
    print(f"\n== throughput on plain data: {cameras} cameras of real footage at 768x432, {per_camera - 1} timed "
          f"frames each ==")
    print(f"{'scenario':38} {'gated f/s':>10} {'ungated f/s':>12} {'ratio':>6} {'gated%':>7} {'passes':>7} "
          f"{'gate ms':>8} {'decode ms':>10} {'infer ms':>9}  (per input frame; passes per gated frame)")
    rate_10 = 0.0
    for name, share in (("(a) static only", 0.0), ("(b) 10% with motion", 0.1), ("(c) all with motion", 1.0)):
        batches = scenario(cameras, per_camera, share)
        u = run_ungated(detector, batches)
        ufps = u["frames"] / u["seconds"]
        runs = [("now", detector, shipped)] + ([("now, float model", float_detector, shipped),
                                                ("now, square input", square, shipped),
                                                ("before", legacy, legacy_vision.RULES)] if share else [])
        for when, det, rules in runs:
            g = run_gated(det, batches, cameras, rules)
            gfps, n = g["frames"] / g["seconds"], g["frames"]
            passes = g["passes"] / g["gated"] if g["gated"] else 0.0
            print(f"{name + ', ' + when:38} {gfps:>10.1f} {ufps:>12.1f} {gfps / ufps:>5.1f}x "
                  f"{100 * g['gated'] / n:>6.0f}% {passes:>7.2f} {g['gate'] / n:>8.2f} {g['decode'] / n:>10.2f} "
                  f"{g['inference'] / n:>9.2f}")
            if share == 0.1 and when == "now":
                rate_10 = gfps
    return rate_10


def crowd(detector, float_detector, square, legacy, shipped: VisionRules, night: VisionRules, quick: bool) -> None:
    """Section 1: the crowded 1080p night street, before and now."""
    frames = 6 if quick else 12
    with tempfile.TemporaryDirectory() as tmp:
        seq = eval_vision.read_sequence(write_sequence(Path(tmp) / "night", "night", people=25, frames=frames,
                                                       heights=(60, 320), seed=31))
        print(f"== a crowded 1080p street at night: 25 real people 60-320 px tall walking (tests/sim/crowd.py), "
              f"motion everywhere, {frames - 1} frames ==")
        names = ["<60", "60-100", "100-150", "150-300", ">300"]
        print(f"{'detection stage':34} {'passes':>6} {'ms/frame':>9}  recall by height {' '.join(f'{n:>7}' for n in names)}"
              f"  {'R 100-300':>9} {'P 100-300':>9} {'P all':>6} {'reported':>9}")
        runs = [("before issue 11 (crop cap 6)", legacy, VisionProfiles(legacy_vision.RULES)),
                ("now, whole frame only (budget 1)", detector,
                 VisionProfiles(replace(night, detector=replace(night.detector, passes_per_frame=1)))),
                (f"now, shipped (budget {night.detector.passes_per_frame:g})", detector, VisionProfiles(night)),
                ("now, shipped, float model", float_detector, VisionProfiles(night)),
                ("now, shipped, square input only", square, VisionProfiles(night)),
                ("now, budget 4", detector,
                 VisionProfiles(replace(night, detector=replace(night.detector, passes_per_frame=4))))]
        for name, det, profiles in runs:
            ev = eval_vision.evaluate(seq, det, profiles)
            d = ev.detected
            recall = " ".join(f"{f'{h}/{n}':>7}" for h, n in zip(d.found, d.people))
            band = eval_vision.band_keys()
            print(f"{name:34} {statistics.mean(ev.passes):>6.2f} {statistics.median(ev.ms):>9.0f}  "
                  f"{'':16} {recall}  {d.recall(band):>9.2f} {d.precision(band):>9.2f} "
                  f"{d.precision(range(5)):>6.2f} {len(ev.people_reported):>4}/{len(ev.people_in_zones):<4}")
        print("(ms/frame: the whole pipeline per frame, one frame per batch: gate, decode, crops, model, merge, "
              "tracking; 'reported': people counted in the zone at least once)")


def write_cameras(config_dir: Path, cameras: int) -> None:
    """A bench county: ``cameras`` cameras at S01, each watching a shaft mouth."""
    cams = [{"id": f"CAM-{c:03d}", "site_id": "S01", "source": "demo:still", "fps": 1, "width": 768, "height": 432,
             "zones": [{"name": "shaft_mouth", "polygon": [list(p) for p in ZONE.polygon], "objects": ["person"],
                        "min_frames": 2}]} for c in range(cameras)]
    (config_dir / "cameras.yaml").write_text(yaml.safe_dump({"cameras": cams}))


def latency(quick: bool) -> list[float]:
    cameras, seconds, busy = (10, 24, 2) if quick else (20, 60, 4)
    with bench_broker() as (broker, tmp):
        run_dir = Path(tmp) / "run"
        config_dir = isolated_config(run_dir, "bench-vision", partitions=4, log_level="warning")
        write_cameras(config_dir, cameras)
        thresholds = yaml.safe_load((config_dir / "thresholds.yaml").read_text())
        # Every new person is a sample: people come and go every few seconds on the busy cameras,
        # and a track ends 2 s after its person left.
        thresholds["vision"]["min_signal_interval_s"] = 0
        thresholds["vision"]["tracker"]["max_gap_s"] = 2
        (config_dir / "thresholds.yaml").write_text(yaml.safe_dump(thresholds))
        cfg = load_config(config_dir)
        asyncio.run(ensure_topics(broker.bootstrap, topic_plan(cfg)))
        worker = WorkerProcess(config_dir, broker.bootstrap, run_dir / "worker.log").start()
        try:
            worker.wait_ready(topic_suffix="frames", timeout=120)
            return asyncio.run(_latency_run(broker.bootstrap, cfg, cameras, seconds, busy))
        finally:
            worker.stop()


async def _latency_run(bootstrap: str, cfg, cameras: int, seconds: int, busy: int) -> list[float]:
    still = encode(video_frames(PEOPLE, 0, 1, 1)[0])
    moving = [encode(f) for f in video_frames(PEOPLE, 240, seconds, 10)]
    consumer = AIOKafkaConsumer(cfg.topic("signals"), bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    latencies: list[float] = []

    async def collect():
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                latencies.extend(now - json.loads(r.value)["ts"] for r in records)

    collector = asyncio.create_task(collect())
    async with KafkaSink(bootstrap, "bench-cameras", linger_ms=0) as sink:
        for k in range(seconds):
            tick = time.perf_counter()
            for c in range(cameras):
                meta = FrameMeta(f"CAM-{c:03d}", "S01", time.time(), k + 1)
                # Busy cameras: 4 s with a person, then 4 s of the empty scene, staggered.
                present = c < busy and (k + c) % 8 < 4
                await sink.send(cfg.topic("frames"), meta.camera_id, moving[k] if present else still,
                                headers=meta.headers(), wait=False)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    await asyncio.sleep(5)
    collector.cancel()
    await consumer.stop()
    return latencies


def agent_throughput(quick: bool, model: Path) -> float:
    """Frames/s through a real worker (Kafka transport included) running ``model``, 10% of
    cameras with motion."""
    # A minute of frames: the worker took a backlog of 800 in about 3 s, where a session loaded
    # on first use or a commit weighed too much.
    cameras, per_camera = (20, 10) if quick else (40, 60)
    batches = scenario(cameras, per_camera, 0.1)
    with bench_broker() as (broker, tmp), model_override(model):
        run_dir = Path(tmp) / "run"
        config_dir = isolated_config(run_dir, "bench-vision-rate", partitions=4, log_level="warning")
        write_cameras(config_dir, cameras)
        messages = []
        for batch in batches:
            for f in batch:
                meta = FrameMeta(f.camera_id, "S01", time.time() - 60, f.seq)
                messages.append((f.camera_id, f.jpeg, partition_for(f.camera_id, 4), meta.headers()))
        return agent_rate(broker.bootstrap, config_dir, "frames", messages, len(messages),
                          run_dir / "worker.log", ready_topic="frames")


@contextmanager
def model_override(model: Path):
    """The worker started meanwhile runs ``model`` (SHAFTWATCH_MODEL, as an operator would set it)."""
    before = os.environ.get("SHAFTWATCH_MODEL")
    os.environ["SHAFTWATCH_MODEL"] = str(model)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SHAFTWATCH_MODEL")
        else:
            os.environ["SHAFTWATCH_MODEL"] = before


def agent_comparison(quick: bool, shipped: Path) -> float:
    """The shipped model and the float one through the agent, alternating (this machine's
    speed drifts between minutes); prints every run and returns the shipped model's median."""
    rounds = 1 if quick else 2
    rates: dict[Path, list[float]] = {shipped: [], FLOAT_MODEL: []}
    for _ in range(rounds):
        for model in rates:
            rates[model].append(agent_throughput(quick, model))
    print("\n== through the vision agent on the real broker (10% with motion, Kafka transport included) ==")
    for model, runs in rates.items():
        print(f"{model.name:34} {statistics.median(runs):>7.0f} frames/s median "
              f"(runs {', '.join(f'{r:.0f}' for r in runs)})")
    return statistics.median(rates[shipped])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    config = load_config(REPO / "configs")
    model = config.model_path  # the shipped model (int8, built by `make model`); the float one is measured beside it
    detector = ObjectDetector(model)
    float_detector = ObjectDetector(FLOAT_MODEL)
    square = ObjectDetector(model, wide_inputs=False)  # every crop padded to 416 x 416, as before
    legacy = legacy_vision.LegacyDetector(FLOAT_MODEL)  # the detection stage before issue 11, as it ran then
    thresholds = config.thresholds
    shipped, night = thresholds.vision, thresholds.at_night().vision
    print(f"model: {model.name} (float beside it: {FLOAT_MODEL.name}), input {detector.input_size} px, CPU; load average at start "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores, shared)\n")
    crowd(detector, float_detector, square, legacy, shipped, night, args.quick)
    rate_10 = throughput(detector, float_detector, square, legacy, shipped, args.quick)
    print(f"\nat 1 frame/s per camera, with 10% of frames showing motion, one core of this machine carries "
          f"about {rate_10:.0f} cameras (the pipeline runs on one executor thread per worker; "
          f"a second worker on the second core doubles it, minus the broker's share)")
    through_agent = agent_comparison(args.quick, model)
    print(f"with the shipped model the agent carries about {through_agent:.0f} cameras at 1 frame/s")
    lat = latency(args.quick)
    if len(lat) >= 2:
        q = statistics.quantiles(lat, n=100)
        print(f"\n== capture -> signal through the broker ==\n"
              f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms over {len(lat)} signals "
              f"(cameras at 1 frame/s, people coming and going on a few of them)")
    else:
        print("\n== capture -> signal through the broker ==\nno signals arrived: see the worker log")
    print(f"\nload average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
