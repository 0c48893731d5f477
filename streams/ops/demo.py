"""Demo feeds for one machine: cameras, meters and fences of the demo county.

Each feeder plays the role of a real partner (camera gateway, utility, carrier) and
writes to Kafka through the same contract. Each can stage a scripted night-time theft at
one shaft (``theft_site``) after ``theft_after_s`` seconds:

- cameras at that site switch from their static scene to footage with people / vehicles;
- the shaft's cut-off mine line starts drawing 25-35 kW;
- four phones and a vehicle terminal appear in the shaft's fence zone and stay.

With a theft staged, the demo clock is shifted so that source time reads 01:30 local when
the feeders start: the theft happens at night, as thefts do. The pure generators
(``meter_power_kw``, ``static_scene``...) are seeded and used by tests as well.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.geometry import bounding_box, point_in_polygon
from detectors.timeofday import LocalClock
from streams.config import Camera, FenceZone, Meter, ShaftWatchConfig
from streams.contract.decoding import encode
from streams.contract.records import SCHEMA_VERSION, FencePing, MeterReading
from streams.contract.topics import FENCE_PINGS, FRAMES, METER_READINGS
from streams.edge.camera_gateway import CameraStream, FrameReader, VideoReader, open_reader
from streams.edge.pseudonyms import load_key, pseudonymize
from streams.kafka.producer import KafkaSink
from streams.logs import ids
from streams.ops.processes import stop_on_signals

log = logging.getLogger("shaftwatch.demo")


# --------------------------------------------------------------------------- clock


@dataclass(frozen=True)
class DemoClock:
    """Source time of the demo: real time plus a fixed offset."""

    offset_s: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s

    @classmethod
    def night(cls, clock: LocalClock, local_hour: float = 1.5) -> DemoClock:
        """A clock that reads ``local_hour`` (local time) right now, on the last such night
        (always the past: sources never report from the future)."""
        now = time.time()
        return cls(offset_s=clock.last(local_hour, now) - now)


# --------------------------------------------------------------------------- theft script


@dataclass
class TheftScript:
    site_id: str | None
    starts_at_monotonic: float

    @classmethod
    def after(cls, site_id: str | None, seconds: float) -> TheftScript:
        return cls(site_id, time.monotonic() + seconds)

    def active_at(self, site_id: str) -> bool:
        return self.site_id == site_id and time.monotonic() >= self.starts_at_monotonic


async def _until(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    except asyncio.TimeoutError:
        pass


def _stop_event(duration_s: float | None) -> asyncio.Event:
    """Set by Ctrl-C or SIGTERM, or after ``duration_s`` seconds."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    if duration_s is not None:
        asyncio.get_running_loop().call_later(duration_s, stop.set)
    return stop


# --------------------------------------------------------------------------- cameras


def static_scene(base: np.ndarray, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    """A still scene as a real sensor gives it: the same picture with a little noise."""
    jitter = rng.normal(0.0, noise, base.shape)
    return np.clip(base.astype(np.float32) + jitter, 0, 255).astype(np.uint8)


def synthetic_scene(width: int, height: int) -> np.ndarray:
    """A plain night-grey scene with a horizon, for when no footage is available."""
    frame = np.full((height, width, 3), 40, np.uint8)
    frame[height // 2:, :] = 55
    return frame


class DemoCameraReader:
    """Static scene until a theft is staged at this camera's site, then the footage plays."""

    def __init__(self, camera: Camera, footage_dir: Path, theft: TheftScript, seed: int):
        self.camera = camera
        self.theft = theft
        self.rng = np.random.default_rng(seed)
        name = camera.source.removeprefix("demo:")
        self.footage = footage_dir / name if name != "still" else None
        self.video: VideoReader | None = None
        still_source = self.footage if self.footage and self.footage.exists() else None
        if still_source is None:
            still_source = next(iter(sorted(footage_dir.glob("*.mp4"))), None) if footage_dir.is_dir() else None
        if still_source is not None:
            first = open_reader(str(still_source), camera.fps).read()
            self.still = first if first is not None else synthetic_scene(camera.width, camera.height)
        else:
            self.still = synthetic_scene(camera.width, camera.height)

    def read(self) -> np.ndarray | None:
        if self.theft.active_at(self.camera.site_id) and self.footage is not None and self.footage.exists():
            if self.video is None:
                self.video = VideoReader(str(self.footage), self.camera.fps, loop=True)
            return self.video.read()
        return static_scene(self.still, self.rng)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


async def run_camera_feeder(cfg: ShaftWatchConfig, theft_site: str | None = None, theft_after_s: float = 60.0,
                            duration_s: float | None = None, clock: DemoClock | None = None) -> int:
    stop = _stop_event(duration_s)
    clock = clock or (DemoClock.night(cfg.thresholds.clock()) if theft_site else DemoClock())
    footage = cfg.footage_dir
    if not footage.is_dir():
        log.warning("demo footage not found: cameras show a synthetic static scene and no theft footage",
                    extra=ids(footage_dir=str(footage), hint="set demo.footage_dir in configs/shaftwatch.yaml"))
    theft = TheftScript.after(theft_site, theft_after_s)
    streams = []
    for i, camera in enumerate(cfg.cameras.cameras):
        if camera.source.startswith("demo:"):
            def opener(camera=camera, i=i) -> FrameReader:
                return DemoCameraReader(camera, footage, theft, cfg.runtime.demo.seed + i)
        else:
            def opener(camera=camera) -> FrameReader:
                return open_reader(camera.source, camera.fps)
        streams.append(CameraStream(camera, opener, topic=cfg.topic(FRAMES.name), clock=clock.now))
    log.info("camera feeder started", extra=ids(cameras=[c.id for c in cfg.cameras.cameras], theft_site=theft_site))
    async with KafkaSink(cfg.bootstrap_servers, "demo-cameras", security=cfg.kafka_security) as sink:
        await asyncio.gather(*(s.run(sink, stop) for s in streams))
    return 0


# --------------------------------------------------------------------------- meters


def meter_power_kw(meter: Meter, ts: float, clock: LocalClock, rng: random.Random) -> float:
    """Average power of one meter over the interval ending at ts, in a quiet county."""
    hour = clock.hour_of_day(ts)
    local = clock.local(ts)
    month, weekday = local.tm_mon, local.tm_wday
    if meter.expected_zero:
        return 0.0  # the line is cut: the meter reads nothing
    if meter.kind == "irrigation":
        plan = meter.irrigation
        start, end = plan.hours
        in_season = month in plan.months
        pumping = in_season and start <= hour < end and rng.random() < 0.55
        return round(plan.pump_kw * rng.uniform(0.85, 1.0), 2) if pumping else round(rng.uniform(0.0, 0.08), 2)
    if meter.kind == "village":
        daily = 0.18 + 0.12 * math.sin((hour - 7) / 24 * 2 * math.pi) + (0.22 if 18 <= hour < 22 else 0.0)
        return round(meter.rated_kw * daily * rng.uniform(0.9, 1.1), 2)
    # workshop: day shift on working days (Monday to Friday)
    working = weekday < 5 and 8 <= hour < 18
    return round(meter.rated_kw * (rng.uniform(0.45, 0.7) if working else rng.uniform(0.02, 0.06)), 2)


def theft_power_kw(rng: random.Random) -> float:
    """Pumps, a winch and a crusher on a reconnected mine line."""
    return round(rng.uniform(25.0, 35.0), 2)


def reading_json(meter: Meter, ts: float, kw: float, register: float, source_id: str) -> bytes:
    energy = round(kw * meter.interval_s / 3600, 3)
    return encode(MeterReading(v=SCHEMA_VERSION, source_id=source_id, meter_id=meter.id, ts=ts,
                               interval_s=meter.interval_s, energy_kwh=energy, power_kw=kw,
                               register_kwh=round(register, 3)))


async def run_meter_feeder(cfg: ShaftWatchConfig, theft_site: str | None = None, theft_after_s: float = 60.0,
                           duration_s: float | None = None, clock: DemoClock | None = None) -> int:
    stop = _stop_event(duration_s)
    clock = clock or (DemoClock.night(cfg.thresholds.clock()) if theft_site else DemoClock())
    local_clock = cfg.thresholds.clock()
    rng = random.Random(cfg.runtime.demo.seed)
    theft = TheftScript.after(theft_site, theft_after_s)
    meters = cfg.meters.meters
    source_id = "utility-demo"
    registers = {m.id: rng.uniform(1000, 50000) if not m.expected_zero else 12345.0 for m in meters}

    def reading(meter: Meter, ts: float, stolen: bool) -> bytes:
        kw = theft_power_kw(rng) if stolen else meter_power_kw(meter, ts, local_clock, rng)
        registers[meter.id] += kw * meter.interval_s / 3600
        return reading_json(meter, ts, kw, registers[meter.id], source_id)

    interval = meters[0].interval_s if meters else 900
    now = clock.now()
    last_end = now - now % interval
    history = cfg.runtime.demo.meter_history_days * 86400
    async with KafkaSink(cfg.bootstrap_servers, "demo-meters", linger_ms=20, security=cfg.kafka_security) as sink:
        # Backfill history so that baselines have something to learn from, in one burst.
        futures = []
        ts = last_end - history + interval
        while ts <= last_end and not stop.is_set():
            for meter in meters:
                futures.append(await sink.send(cfg.topic(METER_READINGS.name), meter.id, reading(meter, ts, False), wait=False))
            ts += interval
        await asyncio.gather(*futures)
        log.info("meter history sent", extra=ids(readings=len(futures), days=cfg.runtime.demo.meter_history_days))
        theft_reported = False
        while not stop.is_set():
            now = clock.now()
            next_end = last_end + interval
            if theft_site and not theft_reported and theft.active_at(theft_site):
                # The utility's system reports the interval in which the line came alive at
                # once (an alarm reading), not at the end of the interval.
                for meter in meters:
                    stolen = meter.expected_zero and meter.site_id == theft_site
                    await sink.send(cfg.topic(METER_READINGS.name), meter.id, reading(meter, next_end, stolen))
                    if stolen:
                        log.info("theft staged on meter", extra=ids(meter_id=meter.id, site_id=theft_site))
                theft_reported = True
                last_end = next_end
                continue
            if now >= next_end:
                for meter in meters:
                    stolen = meter.expected_zero and theft.active_at(meter.site_id)
                    await sink.send(cfg.topic(METER_READINGS.name), meter.id, reading(meter, next_end, stolen), wait=False)
                await sink.flush()
                last_end = next_end
            await _until(stop, min(1.0, max(0.0, next_end - now)))
    return 0


# --------------------------------------------------------------------------- fences


def point_in_zone(zone: FenceZone, rng: random.Random) -> tuple[float, float]:
    """A random point inside a polygon zone (rejection sampling in its bounding box)."""
    x0, y0, x1, y1 = bounding_box(zone.polygon)
    for _ in range(1000):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if point_in_polygon(x, y, zone.polygon):
            return x, y
    return (x0 + x1) / 2, (y0 + y1) / 2


def ping_json(pid: str, kind: str, ts: float, zone: FenceZone, rng: random.Random, source_id: str,
              event: str | None, near: tuple[float, float] | None = None) -> bytes:
    """A ping in the zone: at a random point, or within about 100 m of ``near``."""
    ping: dict = {"v": SCHEMA_VERSION, "source_id": source_id, "device_pid": pid, "device_kind": kind,
                  "ts": ts, "event": event}
    if zone.polygon is not None:
        if near is not None:
            lon, lat = near[0] + rng.uniform(-0.001, 0.001), near[1] + rng.uniform(-0.0008, 0.0008)
        else:
            lon, lat = point_in_zone(zone, rng)
        ping.update(lon=round(lon, 6), lat=round(lat, 6), accuracy_m=round(rng.uniform(30, 300), 1))
    else:
        ping.update(cell_id=rng.choice(zone.cells), zone_id=zone.id)
    return encode(FencePing(**ping))


async def run_fence_feeder(cfg: ShaftWatchConfig, theft_site: str | None = None, theft_after_s: float = 60.0,
                           duration_s: float | None = None, clock: DemoClock | None = None) -> int:
    stop = _stop_event(duration_s)
    clock = clock or (DemoClock.night(cfg.thresholds.clock()) if theft_site else DemoClock())
    rng = random.Random(cfg.runtime.demo.seed + 1)
    key = load_key(cfg.runtime.pseudonym_key_env)
    theft = TheftScript.after(theft_site, theft_after_s)
    zones = cfg.fences.zones
    # Clear ids exist only here, where the carrier produces: they are hashed before Kafka.
    villagers = [f"4600{rng.randrange(10**10, 10**11)}" for _ in range(200)]
    crew = [f"4600{rng.randrange(10**10, 10**11)}" for _ in range(4)]
    truck = f"VT-{rng.randrange(10**6, 10**7)}"
    theft_zone = next((z for z in zones if theft_site in z.site_ids), None) if theft_site else None
    per_hour = cfg.runtime.demo.fence_passers_per_hour
    crew_last_ping = None
    async with KafkaSink(cfg.bootstrap_servers, "demo-fences", security=cfg.kafka_security) as sink:
        site = cfg.site(theft_site) if theft_site else None
        shaft = (site.lon, site.lat) if site else None

        async def send(clear_id: str, kind: str, zone: FenceZone, event: str | None, near=None,
                       ago_s: float = 0.0) -> None:
            pid = pseudonymize(key, clear_id)
            carrier = cfg.fences.carriers[sum(clear_id.encode()) % len(cfg.fences.carriers)]
            await sink.send(cfg.topic(FENCE_PINGS.name), pid,
                            ping_json(pid, kind, clock.now() - ago_s, zone, rng, carrier, event, near), wait=False)

        while not stop.is_set():
            # Villagers on the roads that cross the zones: one ping in, one ping out.
            if zones and rng.random() < per_hour / 3600:
                zone = rng.choice(zones)
                passer = rng.choice(villagers)
                await send(passer, "phone", zone, "enter")
                await send(passer, "phone", zone, "exit")
            # The crew enters together and stays; carriers report presence every 30 s.
            if theft_zone is not None and theft.active_at(theft_site):
                if crew_last_ping is None:
                    # The carrier reports with a delay: the crew's first ten minutes arrive together.
                    for ago, event in ((600, "enter"), (300, "present")):
                        for device in crew:
                            await send(device, "phone", theft_zone, event, near=shaft, ago_s=ago)
                        await send(truck, "vehicle_terminal", theft_zone, event, near=shaft, ago_s=ago)
                if crew_last_ping is None or time.monotonic() - crew_last_ping >= 30:
                    for device in crew:  # at work around the shaft mouth
                        await send(device, "phone", theft_zone, "present", near=shaft)
                    await send(truck, "vehicle_terminal", theft_zone, "present", near=shaft)
                    if crew_last_ping is None:
                        log.info("theft staged in fence", extra=ids(zone_id=theft_zone.id, site_id=theft_site,
                                                                     devices=len(crew) + 1))
                    crew_last_ping = time.monotonic()
            await sink.flush()
            await _until(stop, 1.0)
    return 0
