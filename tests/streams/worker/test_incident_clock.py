"""The incident clock on the real broker: quiet-close, escalation and meter silence are
decided from facts kept with each incident and each meter's own feed, never from which
worker guesses the time.

A theft night is staged as the demo stages it (source times of last night, every meter
reporting each interval, a cut line drawing power, a crew in the fence zone, people at
the shaft camera); workers are killed, added and restarted in the middle of it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
import yaml

from alerts.store import AlertStore
from streams.config import load_config
from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta
from streams.contract.partitioning import partition_for
from streams.contract.records import Signal
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from streams.ops.demo import DemoClock, meter_power_kw, reading_json
from tests.helpers import (
    WorkerProcess, all_incidents, free_port, isolated_config, read_all, wait_for, without_cameras,
)

pytestmark = pytest.mark.broker

INTERVAL = 900
FAST_CLOCKS = {"incident_housekeeping_s": 1, "silence_check_s": 1}  # housekeeping and silence every second


async def produce(bootstrap: str, topic: str, records) -> None:
    """(key, value, headers) records, sent without waiting for each, then flushed."""
    async with KafkaSink(bootstrap, "test", linger_ms=20) as sink:
        futures = [await sink.send(topic, key, value, headers=headers, wait=False) for key, value, headers in records]
        await asyncio.gather(*futures)


class TheftNight:
    """Last night at shaft S01 of the demo county, as its partners would report it: the
    theft starts at ``t0`` (01:30 local, last night, on an interval boundary)."""

    def __init__(self, cfg, bootstrap: str, t0: float | None = None, thief_meter: str = "M-0001"):
        self.cfg = cfg
        self.bootstrap = bootstrap
        if t0 is None:
            now = DemoClock.night(cfg.thresholds.clock()).now()
            t0 = now - now % INTERVAL
        self.t0 = t0
        self.thief_meter = thief_meter
        self.rng = random.Random(5)
        self.registers = {m.id: 1000.0 for m in cfg.meters.meters}
        site = cfg.site("S01")
        self.shaft = (site.lon, site.lat)
        self.crew = [f"p1:crew-{i}" for i in range(4)] + ["p1:truck-0"]

    def meters(self, first: float, last: float, meter_ids=None):
        """Every meter (or those named), each interval from ``first`` to ``last``; the
        thief's meter (a cut line) draws 30 kW from ``t0`` on."""
        for ts in range(int(first), int(last) + 1, INTERVAL):
            for meter in self.cfg.meters.meters:
                if meter_ids is not None and meter.id not in meter_ids:
                    continue
                stolen = meter.id == self.thief_meter and ts >= self.t0
                kw = 30.0 if stolen else meter_power_kw(meter, ts, self.cfg.thresholds.clock(), self.rng)
                self.registers[meter.id] += kw * INTERVAL / 3600
                yield meter.id.encode(), reading_json(meter, float(ts), kw, self.registers[meter.id], "utility"), None

    def pings(self, first: float, last: float):
        """The crew and their truck around the shaft mouth, a ping a minute each."""
        for ts in range(int(first), int(last) + 1, 60):
            for i, pid in enumerate(self.crew):
                kind = "vehicle_terminal" if pid.startswith("p1:truck") else "phone"
                yield pid.encode(), json.dumps({
                    "v": 1, "source_id": "CMCC", "device_pid": pid, "device_kind": kind, "ts": float(ts + i),
                    "lon": self.shaft[0] + 0.0004 * i, "lat": self.shaft[1] - 0.0003 * i,
                    "accuracy_m": 50}).encode(), None

    def frames(self, first: float, seq0: int):
        """CAM-S01-A: the empty shaft mouth, then people walking in (real footage)."""
        from tests.helpers import PEOPLE, jpegs
        if not PEOPLE.exists():
            pytest.skip(f"real footage not found at {PEOPLE}")
        for k, jpeg in enumerate(jpegs(PEOPLE, [0] * 3 + list(range(240, 320, 10)))):
            yield b"CAM-S01-A", jpeg, FrameMeta("CAM-S01-A", "S01", first + k, seq0 + k).headers()

    def send(self, topic: str, records) -> None:
        asyncio.run(produce(self.bootstrap, self.cfg.topic(topic), list(records)))

    def send_first_half_hour(self) -> None:
        """A day of every meter's history, then the theft's first half hour on every feed."""
        self.send("meter-readings", self.meters(self.t0 - 86400, self.t0 - INTERVAL))
        self.send("meter-readings", self.meters(self.t0, self.t0 + INTERVAL))
        self.send("fence-pings", self.pings(self.t0, self.t0 + 600))
        self.send("frames", self.frames(self.t0, 1))

    @staticmethod
    def wait_critical(store: AlertStore, timeout: float, what: str = "") -> list[dict]:
        """S01's incidents once the newest is critical with camera, power and fence evidence."""
        newest: dict = {}

        def critical():
            rows = [i for i in all_incidents(store) if i["site_id"] == "S01"]
            newest.update(rows[0] if rows else {})
            return rows and rows[0]["severity"] == "critical" and len(rows[0]["draft"]["strongest"]) == 3 and rows
        try:
            return wait_for(critical, timeout, what=f"{what}a critical S01 incident with camera, power and fence evidence")
        except AssertionError as exc:  # say what there was instead
            raise AssertionError(f"{exc}; newest S01 incident: severity {newest.get('severity')}, evidence from "
                                 f"{sorted((newest.get('draft') or {}).get('strongest', []))}") from None


def signals_on_kafka(cfg, bootstrap: str) -> list[Signal]:
    # Asking for more than there can be reads everything there is, until the timeout.
    return [decode(Signal, r.value) for r in asyncio.run(read_all(bootstrap, cfg.topic("signals"), 10_000, timeout=5))]


def holder_of(workers: list[WorkerProcess], topic: str, partition: int) -> WorkerProcess:
    def find():
        for worker in workers:
            if f"{topic}:{partition}" in worker.get("/health")["active_partitions"]:
                return worker
        return None
    return wait_for(find, 60, what=f"the worker holding {topic}:{partition}")


def every_signal_stored(store: AlertStore, cfg, bootstrap: str) -> bool:
    emitted = {s.signal_id for s in signals_on_kafka(cfg, bootstrap) if s.site_id == "S01"}
    stored = {s["signal_id"] for i in all_incidents(store) for s in store.incidents.get(i["id"])["signals"]}
    return emitted <= stored


def assert_one_theft_incident(store: AlertStore, cfg, bootstrap: str, phase_two_power_ts: float) -> dict:
    """The theft is one open critical incident with every signal of S01 and no repeats, and
    nothing else was opened (no incident of a silent meter, no second theft incident)."""
    incidents = all_incidents(store)
    assert len(incidents) == 1, [(i["site_id"], i["state"], i["severity"], i["summary"]) for i in incidents]
    [incident] = incidents
    full = store.incidents.get(incident["id"])
    assert (full["site_id"], full["state"], full["severity"]) == ("S01", "new", "critical"), full["audit"]
    assert set(full["draft"]["strongest"]) == {"vision", "power", "fence"}
    stored = [s["signal_id"] for s in full["signals"]]
    assert len(stored) == len(set(stored)) and sorted(stored) == sorted(full["draft"]["signal_ids"])
    emitted = {s.signal_id for s in signals_on_kafka(cfg, bootstrap) if s.site_id == "S01"}
    assert emitted == set(stored)  # every piece of evidence, each counted once
    assert phase_two_power_ts in {s["ts"] for s in full["signals"] if s["source_kind"] == "power"}
    assert "resolve" not in [a["action"] for a in full["audit"]]
    return full


@pytest.mark.parametrize("fault", ["kill-the-holder-and-add-a-worker", "restart-the-only-worker"])
def test_a_theft_stays_one_open_critical_incident_through_worker_faults(kafka_bootstrap, tmp_path, fault):
    """Issue 14's report: the worker holding the theft's signals is SIGKILLed mid-theft and
    a worker joins (or the only worker restarts); the leader's housekeeping runs every
    second meanwhile. The incident must stay open, critical, whole, and alone."""
    config_dir = isolated_config(tmp_path, "clock", partitions=4, **FAST_CLOCKS)
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    night = TheftNight(cfg, kafka_bootstrap)
    t0 = night.t0
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / f"worker-{len(workers)}.log",
                               port=free_port()).start()
        workers.append(worker)
        return worker

    try:
        start()
        if fault.startswith("kill"):
            start()
        for worker in workers:
            worker.wait_ready()
        night.send_first_half_hour()
        store = AlertStore(cfg.store_url)
        TheftNight.wait_critical(store, 120)

        if fault.startswith("kill"):
            holder = holder_of(workers, cfg.topic("signals"), partition_for("S01", 4))
            holder.proc.kill()  # SIGKILL: no goodbye to the group, no commit
            holder.proc.wait()
            start().wait_ready()
        else:
            workers[0].stop()
            start().wait_ready()

        # The theft goes on: the cut line keeps drawing, the crew stays, people at the shaft.
        night.send("meter-readings", night.meters(t0 + 2 * INTERVAL, t0 + 5 * INTERVAL))
        night.send("fence-pings", night.pings(t0 + 660, t0 + 1200))
        night.send("frames", night.frames(t0 + 300, 100))
        repeat_ts = float(t0 + 4 * INTERVAL)  # the reconnection repeats every 4 intervals
        wait_for(lambda: any(s["ts"] == repeat_ts for i in all_incidents(store)
                             for s in store.incidents.get(i["id"])["signals"]), 120,
                 what="the theft's later power evidence stored")
        wait_for(lambda: every_signal_stored(store, cfg, kafka_bootstrap), 120,
                 what="every S01 signal on Kafka stored (the frames of the second half take longest)")
        time.sleep(5)  # five housekeeping rounds and silence checks on every worker
        assert_one_theft_incident(store, cfg, kafka_bootstrap, repeat_ts)
    finally:
        for worker in workers:
            worker.stop()


def test_yesterdays_batch_in_the_morning_neither_closes_nor_delays(kafka_bootstrap, tmp_path):
    """A utility pushes yesterday's readings in a morning batch, and they hold a theft of
    their own. Today's critical incident still escalates escalate_after_s after it went
    critical, and nothing is closed; yesterday's theft opens its own incident."""
    config_dir = without_cameras(isolated_config(tmp_path, "morning", **FAST_CLOCKS))
    thresholds = yaml.safe_load((config_dir / "thresholds.yaml").read_text())
    thresholds["fusion"]["escalate_after_s"] = 6
    (config_dir / "thresholds.yaml").write_text(yaml.safe_dump(thresholds, allow_unicode=True))
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    store = AlertStore(cfg.store_url)
    try:
        worker.wait_ready()
        now = time.time()
        today = now - now % INTERVAL
        # Today: S01's cut line draws power from this interval on (the utility's alarm reading).
        night = TheftNight(cfg, kafka_bootstrap, t0=today)
        night.send("meter-readings", night.meters(today, today, meter_ids={"M-0001"}))
        [theft] = wait_for(lambda: all_incidents(store), 60, what="today's incident")
        assert theft["severity"] == "critical"

        # The morning batch: yesterday's readings of every meter, in which S03's cut line
        # drew power from the early hours on.
        yesterday = TheftNight(cfg, kafka_bootstrap, t0=today - 86400 + 4 * INTERVAL, thief_meter="M-0003")
        night.send("meter-readings", yesterday.meters(today - 86400, today - 2 * 3600))
        old = wait_for(lambda: [i for i in all_incidents(store) if i["site_id"] == "S03"], 60,
                       what="yesterday's S03 theft fused")[0]
        assert old["updated_at"] < now - 20 * 3600

        escalated = wait_for(lambda: store.incidents.get(theft["id"])["escalated_at"], 30, what="today's escalation")
        went_critical = store.incidents.get(theft["id"])["draft"]["severity_at"]["critical"]
        assert 6 <= escalated - went_critical <= 6 + 10  # on time (housekeeping every second), not a day late
        # Yesterday's incident reached nobody yet either: it escalates on the wall clock too.
        wait_for(lambda: store.incidents.get(old["id"])["escalated_at"], 30, what="yesterday's incident escalated")
        assert [i["state"] for i in all_incidents(store)] == ["new", "new"]
    finally:
        worker.stop()


def test_a_meter_is_silent_only_when_its_own_partition_moved_past_it(kafka_bootstrap, tmp_path):
    """Meters of one partition are two hours behind those of the other (their upload has
    not arrived). No silence is judged from the other partition's time, nor from recovered
    state after a restart; once the lagging partition's feed moves on, the one meter that
    stayed behind is announced silent, once."""
    config_dir = without_cameras(isolated_config(tmp_path, "silence", **FAST_CLOCKS))
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    live = [m.id for m in cfg.meters.meters if m.kind in ("village", "workshop")]
    ahead = {m for m in live if partition_for(m, 2) == 0}
    behind = {m for m in live if partition_for(m, 2) == 1}
    assert ahead and len(behind) >= 2
    stays_silent = sorted(behind)[0]
    now = time.time()
    t = now - now % INTERVAL - 86400  # yesterday's upload
    feed = TheftNight(cfg, kafka_bootstrap, thief_meter="")  # no theft: a quiet county
    feed.send("meter-readings", feed.meters(t - 6 * 3600, t, meter_ids=ahead))
    feed.send("meter-readings", feed.meters(t - 6 * 3600, t - 8 * INTERVAL, meter_ids=behind))

    def silent_signals():
        return [s for s in signals_on_kafka(cfg, kafka_bootstrap) if s.kind == "meter_silent"]

    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker-0.log").start()
    try:
        worker.wait_ready()
        wait_for(lambda: len(worker.get("/feeds/meters")) == len(ahead | behind), 60, what="every meter seen")
        time.sleep(4)
        assert silent_signals() == []
        worker.stop()
        worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker-1.log").start()
        worker.wait_ready()
        feed.send("meter-readings", feed.meters(t + INTERVAL, t + 2 * INTERVAL, meter_ids=ahead))
        time.sleep(4)
        assert silent_signals() == []  # recovered state and the other partition's time judge nothing

        feed.send("meter-readings", feed.meters(t - 7 * INTERVAL, t + 2 * INTERVAL, meter_ids=behind - {stays_silent}))
        [signal] = wait_for(silent_signals, 30, what="the meter that stayed behind announced silent")
        assert signal.source_id == stays_silent
        assert signal.ts == t - 8 * INTERVAL + 4 * INTERVAL  # when its silence began to count
        time.sleep(3)
        assert len(silent_signals()) == 1  # once
    finally:
        worker.stop()
