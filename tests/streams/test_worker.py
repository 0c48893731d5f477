"""The Faust worker on the real broker: agents consume, tables recover, bad input is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer

from alerts.store import AlertStore
from streams.config import load_config
from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta
from streams.contract.partitioning import partition_for
from streams.contract.records import DeadLetter, Incident
from streams.kafka.producer import KafkaSink
from streams.ops.local_broker import ensure_topics, topic_plan
from tests.helpers import WorkerProcess, all_incidents, count_signals, counter, isolated_config, wait_for

pytestmark = pytest.mark.broker


def reading(meter_id: str, ts: float, kwh: float = 1.0) -> bytes:
    return json.dumps({"v": 1, "source_id": "utility-test", "meter_id": meter_id, "ts": ts,
                       "energy_kwh": kwh}).encode()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list | None]]) -> None:
    async with KafkaSink(bootstrap, "test") as sink:
        for key, value, headers in records:
            await sink.send(topic, key, value, headers=headers)


async def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
    finally:
        await consumer.stop()
    return out


@pytest.fixture
def worker_env(kafka_bootstrap, tmp_path):
    config_dir = isolated_config(tmp_path, "worker")
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield cfg, start
    for worker in workers:
        worker.stop()


def test_table_recovers_exact_state_after_restart(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    topic = cfg.topic("meter-readings")
    base = time.time() - 86400
    batch = [(m.encode(), reading(m, base + i * 900), None) for m in ("M-0001", "M-0002", "M-0003") for i in range(10)]
    worker = start()
    asyncio.run(produce(kafka_bootstrap, topic, batch))
    state = wait_for(lambda: (s := worker.get("/feeds/meters")) and sum(v["count"] for v in s.values()) == 30 and s,
                     60, what="30 readings counted")
    assert {k: v["count"] for k, v in state.items()} == {"M-0001": 10, "M-0002": 10, "M-0003": 10}
    assert state["M-0002"]["last_ts"] == base + 9 * 900
    detail = worker.get("/state/meters/M-0002")
    assert bin(detail["seen"]).count("1") == 10  # ten intervals remembered
    assert sum(len(samples) for samples in detail["buckets"].values()) == 10  # and learnt
    assert worker.stop() == 0

    restarted = start()  # memory store: everything it knows comes back from the changelog
    assert wait_for(lambda: restarted.get("/feeds/meters") == state, 60, what="state recovered")
    assert restarted.get("/state/meters/M-0002") == detail  # baselines and runs, exactly
    asyncio.run(produce(kafka_bootstrap, topic, [(b"M-0001", reading("M-0001", base + 20 * 900), None)]))
    after = wait_for(lambda: (s := restarted.get("/feeds/meters"))["M-0001"]["count"] == 11 and s, 60,
                     what="the new reading counted once")
    assert after["M-0002"] == state["M-0002"]  # nothing replayed twice, nothing lost


def test_malformed_records_go_to_dead_letters_and_the_agent_goes_on(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    worker = start()
    now = time.time()
    bad_readings = [
        (b"M-0001", b"{not json", "not JSON"),
        (b"M-0001", b"", "empty message"),
        (b"M-0001", reading("M-0001", now, kwh=-4.0), "energy_kwh is negative"),
        (b"M-9999", reading("M-9999", now), "unknown meter 'M-9999'"),
    ]
    good = (b"M-0004", reading("M-0004", now - 900), None)
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"),
                        [(k, v, None) for k, v, _ in bad_readings] + [good]))
    meta = FrameMeta("CAM-S01-A", "S01", now, 1)
    bad_frames = [
        (b"CAM-S01-A", b"", meta.headers(), "zero bytes"),
        (b"CAM-S01-A", b"\xff\xd8\xff\xe0 jpeg", [h for h in meta.headers() if h[0] != "site_id"],
         "frame headers missing: site_id"),
        (b"CAM-X", b"\xff\xd8\xff\xe0 jpeg", FrameMeta("CAM-X", "S01", now, 1).headers(), "unknown camera 'CAM-X'"),
        (b"CAM-S01-A", b"GIF89a....", meta.headers(), "not a JPEG"),
    ]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("frames"), [(k, v, h) for k, v, h, _ in bad_frames]))

    letters = asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=8, timeout=60))
    decoded = [decode(DeadLetter, r.value) for r in letters]
    assert len(decoded) == 8
    for (key, value, reason) in bad_readings:
        match = [d for d in decoded if d.topic == cfg.topic("meter-readings") and d.original_value() == value]
        assert match and reason in match[0].reason and match[0].source == "power-agent"
    for (key, value, headers, reason) in bad_frames:
        match = [d for d in decoded if d.topic == cfg.topic("frames") and reason in d.reason]
        assert match and match[0].original_value() == value and match[0].source == "vision-agent"
    # The agent carried on: the good reading behind the bad ones was processed.
    assert wait_for(lambda: worker.get("/feeds/meters").get("M-0004", {}).get("count") == 1, 30,
                    what="good reading after bad ones")
    metrics = __import__("urllib.request").request.urlopen(worker.url("/metrics")).read().decode()
    assert 'shaftwatch_dead_letters_total{source="power-agent",topic="' + cfg.topic("meter-readings") + '"} 4.0' in metrics


def test_reconnection_becomes_a_signal_once_even_when_resent(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    start()
    t0 = time.time() - 20 * 900
    t0 -= t0 % 900
    quiet = [{"meter_id": "M-0001", "ts": t0 + i * 900, "power_kw": 0.0} for i in range(8)]
    theft = [{"meter_id": "M-0001", "ts": t0 + (8 + i) * 900, "power_kw": 31.5} for i in range(2)]
    bad_row = {"meter_id": "M-0001", "ts": t0 + 10 * 900, "power_kw": -3.0}
    batch = json.dumps({"v": 1, "source_id": "utility-test", "readings": quiet + theft + [bad_row]}).encode()
    # The same batch twice: a utility re-sending after a timeout.
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), [(b"M-0001", batch, None)] * 2))
    signals = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=2, timeout=30))
    from streams.contract.records import Signal
    decoded = [decode(Signal, r.value) for r in signals]
    assert [s.kind for s in decoded] == ["reconnection"], decoded
    (signal,) = decoded
    assert signals[0].key == b"S01" and signal.site_id == "S01" and signal.source_id == "M-0001"
    assert signal.ts == t0 + 8 * 900 and signal.details["kw"] == 31.5
    assert "cut" in signal.summary
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=2, timeout=10))]
    assert [d.reason for d in letters] == ["reading 10: power_kw is negative (-3.0)"] * 2


def test_fence_crew_becomes_signals_and_device_state_survives_restart(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    from streams.contract.records import Signal
    worker = start()
    night = time.time() - 3600
    night -= (night + 8 * 3600) % 86400 - 2 * 3600  # 02:00 local, today or yesterday
    if night > time.time():
        night -= 86400

    def ping(pid, ts, kind="phone"):
        return (pid.encode(), json.dumps({"v": 1, "source_id": "CMCC", "device_pid": pid, "device_kind": kind,
                                          "ts": ts, "lon": 110.4128, "lat": 34.4310, "accuracy_m": 60}).encode(), None)

    crew = [f"p1:crew{i}" for i in range(3)]
    pings = [ping(pid, night + k * 200 + i) for k in range(3) for i, pid in enumerate(crew)]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), pings))
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=4, timeout=60))
    signals = [decode(Signal, r.value) for r in records]
    assert sorted(s.kind for s in signals) == ["crew_in_zone", "zone_entry", "zone_entry", "zone_entry"]
    assert all(s.site_id == "S01" and s.source_kind == "fence" and s.source_id == "FZ-JS-1" for s in signals)
    crew_signal = next(s for s in signals if s.kind == "crew_in_zone")
    assert sorted(crew_signal.details["device_pids"]) == crew and crew_signal.details["devices"] == 3 and crew_signal.details["night"] is True

    worker.stop()
    start()
    # The same devices ping on: they were already counted, so no new entry after the restart.
    asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), [ping(pid, night + 700) for pid in crew]))
    time.sleep(5)
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=5, timeout=10))
    assert len(records) == 4, [decode(Signal, r.value).kind for r in records]


def test_frames_become_a_vision_signal_with_a_snapshot(kafka_bootstrap, worker_env):

    import cv2

    from alerts.evidence import EvidenceStore
    from streams.contract.records import Signal
    from tests.detectors.test_vision import PEOPLE, jpegs
    if not PEOPLE.exists():
        pytest.skip(f"real footage not found at {PEOPLE}")
    cfg, start = worker_env
    start()
    t0 = time.time() - 600
    frames = jpegs(PEOPLE, [0] * 3 + list(range(240, 320, 10)))
    batch = [(b"CAM-S01-A", jpeg, FrameMeta("CAM-S01-A", "S01", t0 + k, k + 1).headers())
             for k, jpeg in enumerate(frames)]
    truncated = (b"CAM-S01-A", frames[0][:300], FrameMeta("CAM-S01-A", "S01", t0 + 99, 99).headers())
    asyncio.run(produce(kafka_bootstrap, cfg.topic("frames"), batch + [truncated]))
    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=1, timeout=90))
    (signal,) = [decode(Signal, r.value) for r in records]
    assert (signal.site_id, signal.source_kind, signal.kind) == ("S01", "vision", "person_at_shaft")
    assert signal.details["labels"] == {"person": 1}
    snapshot = EvidenceStore(cfg.evidence_dir).path_of(signal.evidence[0])
    assert snapshot is not None and cv2.imread(str(snapshot)).shape == (432, 768, 3)
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=1, timeout=30))]
    assert [d.source for d in letters] == ["vision-agent"] and "corrupt frame" in letters[0].reason
    assert letters[0].original_value() == frames[0][:300]


def test_a_batch_on_the_wrong_partition_is_refused(kafka_bootstrap, worker_env):
    from streams.contract.partitioning import partition_for
    cfg, start = worker_env
    worker = start()
    home = partition_for("M-0002", 2)
    batch = json.dumps({"v": 1, "source_id": "u", "readings": [{"meter_id": "M-0002", "ts": time.time() - 900,
                                                                 "power_kw": 1.0}]}).encode()

    async def send_elsewhere():
        async with KafkaSink(kafka_bootstrap, "test") as sink:
            await sink.send(cfg.topic("meter-readings"), b"M-0002", batch, partition=1 - home)

    asyncio.run(send_elsewhere())
    letters = [decode(DeadLetter, r.value) for r in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=1, timeout=30))]
    assert len(letters) == 1 and f"meter M-0002 belongs to partition {home}, not {1 - home}" in letters[0].reason
    assert "M-0002" not in worker.get("/feeds/meters")


def test_a_backlog_after_a_long_recovery_is_processed_whole(kafka_bootstrap, tmp_path):
    """A worker restarting with real state (seconds of changelog to replay) and a backlog of
    single readings processes every one of them and commits to the end. Unpatched
    faust-streaming 0.15 drops the readings fetched while recovery ends and never commits
    past them (faust-streaming/faust#596; streams.faust_fixes)."""
    import random

    import yaml
    from aiokafka.admin import AIOKafkaAdminClient

    from tests.bench.agent_rate import without_cameras
    from tests.bench.bench_power import _messages, county_meters, preload_state, warm_states

    rows = county_meters(400)
    config_dir = without_cameras(isolated_config(tmp_path, "backlog", partitions=4))
    (config_dir / "meters.yaml").write_text(yaml.safe_dump({"utility": "test", "meters": rows}))
    cfg = load_config(config_dir)
    preload_state(kafka_bootstrap, config_dir, warm_states(rows, 7, random.Random(3)), 4)  # ~22,000 records
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    backlog = list(_messages(rows, 4, False, 4, random.Random(2)))
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), [(k.encode(), v, None) for k, v, _ in backlog]))

    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        feeds = wait_for(lambda: (f := worker.get("/feeds/meters")) and sum(v["count"] for v in f.values()) >= 1600
                         and f, 90, interval=1, what="all 1,600 readings counted")
        assert all(feeds[r["id"]]["count"] == 4 for r in rows)  # each meter's four intervals, once

        async def committed() -> int:
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                offsets = await admin.list_consumer_group_offsets(cfg.runtime.app.id)
            finally:
                await admin.close()
            return sum(o.offset for tp, o in offsets.items() if tp.topic == cfg.topic("meter-readings"))

        wait_for(lambda: asyncio.run(committed()) == 1600, 30, interval=1, what="offsets committed to the end")
    finally:
        worker.stop()


def test_a_batch_message_writes_each_meters_state_once(kafka_bootstrap, worker_env):
    """BatchedChangelogTable: twelve readings of three meters in one message leave one
    meter-state record per meter in the changelog, and one record per baseline bucket
    they touched, each holding the latest value."""
    cfg, start = worker_env
    worker = start()
    base = (time.time() // 3600) * 3600 - 86400  # on the hour: four readings share an hour bucket
    rows = [{"meter_id": m, "ts": base + i * 900, "energy_kwh": 1.0} for m in ("M-0001", "M-0002", "M-0003")
            for i in range(1, 5)]
    groups: dict[int, list] = {}
    for row in rows:
        groups.setdefault(partition_for(row["meter_id"], 2), []).append(row)
    for partition, items in groups.items():
        asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"),
                            [(items[0]["meter_id"].encode(), json.dumps({"v": 1, "source_id": "utility-test",
                                                                        "readings": items}).encode(), None)]))
    wait_for(lambda: sum(v["count"] for v in worker.get("/feeds/meters").values()) == 12, 60, what="12 readings")
    app_id = cfg.runtime.app.id
    # Asking for one record more than expected reads everything there is, until the timeout.
    states = asyncio.run(read_all(kafka_bootstrap, f"{app_id}-meter-state-changelog", 4, timeout=5))
    buckets = asyncio.run(read_all(kafka_bootstrap, f"{app_id}-meter-baselines-changelog", 7, timeout=5))
    assert sorted(json.loads(r.key) for r in states) == ["M-0001", "M-0002", "M-0003"]
    keys = [json.loads(r.key) for r in buckets]
    assert len(keys) == len(set(keys)) == 6  # two hour buckets per meter, each written once
    assert sum(len(v) for v in worker.get("/state/meters/M-0002")["buckets"].values()) == 4


def test_a_burst_of_signals_publishes_its_incident_once_per_batch(kafka_bootstrap, worker_env):
    """The fusion agent stores a burst of signals in micro-batches and publishes each
    incident once per batch, as it stands after the batch: fewer alerts records than
    signals, the last one holding every signal."""
    cfg, start = worker_env
    night = (time.time() // 86400) * 86400 - 86400 + 19 * 3600  # 03:00 the night before, local (UTC+8)
    burst = [(b"S01", json.dumps({"v": 1, "signal_id": f"burst-{i:02d}", "site_id": "S01", "source_kind": "fence",
                                  "source_id": "FZ-JS-1", "kind": "zone_entry", "ts": night + i * 10,
                                  "strength": 0.5, "summary": f"entry {i}"}).encode(), None) for i in range(40)]
    asyncio.run(produce(kafka_bootstrap, cfg.topic("signals"), burst))  # all waiting before the worker starts
    start()
    store = AlertStore(cfg.store_url)
    wait_for(lambda: count_signals(store) == 40, 60, what="40 signals stored")
    [incident] = all_incidents(store)
    # Asking for one record more than there are signals reads everything there is, until the timeout.
    records = [decode(Incident, r.value) for r in asyncio.run(read_all(kafka_bootstrap, cfg.topic("alerts"), 41,
                                                                       timeout=5))]
    assert {r.incident_id for r in records} == {incident["id"]}
    assert 1 <= len(records) < 40
    assert records[-1].signal_ids == [f"burst-{i:02d}" for i in range(40)] == incident["draft"]["signal_ids"]


def test_a_running_worker_applies_good_thresholds_and_refuses_bad_ones(kafka_bootstrap, tmp_path):
    config_dir = isolated_config(tmp_path, "reload", config_reload_s=0.5)
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        path = config_dir / "thresholds.yaml"
        good = path.read_text()
        path.write_text(good.replace("  dwell_s: 300", "  dwell_s: later"))
        refused = wait_for(lambda: worker.get("/health")["config"]["refused"], 30, what="the bad edit refused")
        assert "fence.dwell_s" in refused[0] and worker.get("/health")["status"] == "ok"
        path.write_text(good.replace("  dwell_s: 300", "  dwell_s: 600"))
        wait_for(lambda: not worker.get("/health")["config"]["refused"], 30, what="the good edit applied")
        assert counter(worker, 'shaftwatch_config_reloads_total{result="applied"}') == 1
    finally:
        worker.stop()
