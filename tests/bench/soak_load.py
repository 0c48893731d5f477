"""The soak's offered load (`make soak`, tests/bench/soak.py): the power utility and a mobile
carrier pushing over the server's HTTP ingest at fixed rates, as partners do, while the
demo county's cameras and fence feed run as usual.

Meters: every meter of the soak's meters.yaml (the demo county's and the extra ones the
soak adds), one 15-minute interval after another on a clock of its own that starts weeks
back and moves ``rate / meters`` intervals per second, so the rules see weeks of readings
and learn and judge as they do in a county; the values follow the demo county's daily
shapes (``streams.ops.demo.meter_power_kw``). So few meters, so fast, keeps the state the
soak fills small (a meter's state is bounded at ≈40 kB): RSS that grows is then not state
being learnt. Fences: devices of their own, one in four staying inside a demo zone and the
rest passing by, pinging on real time (each device every ``devices / rate`` seconds).

Each second, one POST per feed with that second's rows. A 503 (Kafka could not take the
batch) is counted and its rows dropped, as a load generator may; the figures say how many.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from detectors.geometry import bounding_box
from streams.config import ShaftWatchConfig
from streams.ops.demo import meter_power_kw, point_in_zone

INTERVAL_S = 900


@dataclass
class FeedCounts:
    """What one feed of the load did so far."""

    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: int = 0  # requests answered 503
    failed: int = 0  # requests answered otherwise, or not at all
    answer_s: list[float] = field(default_factory=list)  # per request


def window(before: FeedCounts, after: FeedCounts, seconds: float) -> str:
    """One feed's load between two snapshots, in words."""
    answers = sorted(after.answer_s[len(before.answer_s):])
    p99 = answers[int(0.99 * (len(answers) - 1))] if answers else float("nan")
    median = statistics.median(answers) if answers else float("nan")
    return (f"{(after.accepted - before.accepted) / seconds:,.0f}/s accepted of "
            f"{(after.offered - before.offered) / seconds:,.0f}/s offered "
            f"({after.rejected - before.rejected} rejected, {after.unavailable - before.unavailable} requests 503, "
            f"{after.failed - before.failed} failed); ingest answer median {median * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms over {len(answers)} requests")


class IngestLoad(threading.Thread):
    """Pushes meter readings and fence pings to ``base_url`` until ``stop()``; a thread, so
    the soak's own sampling goes on beside it."""

    def __init__(self, cfg: ShaftWatchConfig, base_url: str, meter_rate: float, ping_rate: float,
                 utility_token: str, carrier_token: str, devices: int = 2000, span_s: float = 3600.0):
        super().__init__(name="soak-load", daemon=True)
        self.base_url, self.tokens = base_url, {"meters": utility_token, "fences": carrier_token}
        self.meter_rate, self.ping_rate = meter_rate, ping_rate
        self.meters = list(cfg.meters.meters)
        self.local_clock = cfg.thresholds.clock()
        self.zones = [z for z in cfg.fences.zones if z.polygon]
        self.devices = devices
        self.rng = random.Random(7)
        # The meters' clock: far enough back that ``span_s`` of load never reaches now.
        intervals = int(meter_rate * span_s / max(1, len(self.meters))) + 1
        self.meter_t0 = (time.time() // INTERVAL_S) * INTERVAL_S - (intervals + 2 * 96) * INTERVAL_S
        self.next_reading = 0  # meters[i % n] at interval i // n
        self.next_ping = 0
        self.counts = {"meters": FeedCounts(), "fences": FeedCounts()}
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)

    def run(self) -> None:
        tick = time.monotonic()
        while not self._stopping.is_set():
            self.post("meters", "/ingest/meter-readings", self.readings(int(self.meter_rate)))
            self.post("fences", "/ingest/fence-pings", self.pings(int(self.ping_rate)))
            tick += 1.0
            self._stopping.wait(max(0.0, tick - time.monotonic()))
            tick = max(tick, time.monotonic() - 1.0)  # fallen behind: carry on, do not burst

    def readings(self, n: int) -> list[dict]:
        rows = []
        for i in range(self.next_reading, self.next_reading + n):
            meter = self.meters[i % len(self.meters)]
            ts = self.meter_t0 + (i // len(self.meters)) * INTERVAL_S
            rows.append({"meter_id": meter.id, "ts": ts,
                         "power_kw": meter_power_kw(meter, ts, self.local_clock, self.rng)})
        self.next_reading += n
        return rows

    def pings(self, n: int) -> list[dict]:
        rows, now = [], time.time()
        for j in range(self.next_ping, self.next_ping + n):
            device = j % self.devices
            zone = self.zones[device % len(self.zones)]
            if device % 4 == 0:  # staying: at work, or at home, inside the zone
                lon, lat = point_in_zone(zone, self.rng)
            else:  # passing by, around the zone
                x0, y0, x1, y1 = bounding_box(zone.polygon)
                lon, lat = self.rng.uniform(x0 - 0.01, x1 + 0.01), self.rng.uniform(y0 - 0.01, y1 + 0.01)
            rows.append({"device_id": f"soak-{device:05d}", "device_kind": "phone", "ts": round(now, 3),
                         "lon": round(lon, 6), "lat": round(lat, 6), "accuracy_m": 50.0})
        self.next_ping += n
        return rows

    def post(self, feed: str, path: str, rows: list[dict]) -> None:
        counts = self.counts[feed]
        counts.offered += len(rows)
        request = urllib.request.Request(self.base_url + path, data=json.dumps(rows).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.tokens[feed]}",
                                                  "Content-Type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            counts.accepted += answer["accepted"]
            counts.rejected += answer["rejected"]
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                counts.unavailable += 1
            else:
                counts.failed += 1
        except (OSError, ValueError):
            counts.failed += 1
        counts.answer_s.append(time.monotonic() - started)

    def snapshot(self) -> dict[str, FeedCounts]:
        return {feed: FeedCounts(c.offered, c.accepted, c.rejected, c.unavailable, c.failed, list(c.answer_s))
                for feed, c in self.counts.items()}
