"""State tables on the real broker: recovered exactly after a restart, written at each offset commit, and a backlog after a long recovery processed whole (the Faust fix)."""

from __future__ import annotations

import asyncio
import json
import pickle
import time

import pytest

from streams.config import load_config
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import WorkerProcess, isolated_config, meter_reading, produce, read_all, wait_for

pytestmark = pytest.mark.broker


def test_table_recovers_exact_state_after_restart(kafka_bootstrap, worker_env):
    cfg, start = worker_env
    topic = cfg.topic("meter-readings")
    base = time.time() - 86400
    batch = [(m.encode(), meter_reading(m, base + i * 900), None) for m in ("M-0001", "M-0002", "M-0003") for i in range(10)]
    worker = start()
    asyncio.run(produce(kafka_bootstrap, topic, batch))
    state = wait_for(lambda: (s := worker.get("/feeds/meters")) and sum(v["count"] for v in s.values()) == 30 and s,
                     60, what="30 readings counted")
    assert {k: v["count"] for k, v in state.items()} == {"M-0001": 10, "M-0002": 10, "M-0003": 10}
    assert state["M-0002"]["last_ts"] == base + 9 * 900
    detail = worker.get("/state/meters/M-0002")
    assert bin(detail["seen"]).count("1") == 10  # ten intervals remembered
    # Learnt once older than the learn delay (a theft found late is never learnt); the rest wait.
    delay = cfg.thresholds.power.learn_delay_intervals
    assert len(detail["pending"]) == delay and [p[0] for p in detail["pending"]] == [base + i * 900 for i in range(2, 10)]
    assert sum(len(v) for k, v in detail["buckets"].items() if k.startswith("h")) == 10 - delay
    assert worker.stop() == 0

    restarted = start()  # memory store: everything it knows comes back from the changelog
    assert wait_for(lambda: restarted.get("/feeds/meters") == state, 60, what="state recovered")
    assert restarted.get("/state/meters/M-0002") == detail  # baselines and runs, exactly
    asyncio.run(produce(kafka_bootstrap, topic, [(b"M-0001", meter_reading("M-0001", base + 20 * 900), None)]))
    after = wait_for(lambda: (s := restarted.get("/feeds/meters"))["M-0001"]["count"] == 11 and s, 60,
                     what="the new reading counted once")
    assert after["M-0002"] == state["M-0002"]  # nothing replayed twice, nothing lost


def test_state_is_written_once_per_commit(kafka_bootstrap, worker_env):
    """BatchedChangelogTable: a message of readings of three meters leaves one state record
    per meter in the changelog, and one record per baseline bucket the readings touched,
    each holding the latest value; a meter's records in one record batch. Then twelve
    messages of one reading each for one meter: its state is written at the commits
    (every 2.8 s), not once per message."""
    cfg, start = worker_env
    worker = start()
    base = (time.time() // 3600) * 3600 - 86400  # on the hour: four readings share an hour bucket
    # Twelve intervals a meter: the four oldest are past the learn delay (8) and learnt.
    per_meter = 4 + cfg.thresholds.power.learn_delay_intervals
    rows = [{"meter_id": m, "ts": base + i * 900, "energy_kwh": 1.0} for m in ("M-0001", "M-0002", "M-0003")
            for i in range(1, per_meter + 1)]
    groups: dict[int, list] = {}
    for row in rows:
        groups.setdefault(partition_for(row["meter_id"], 2), []).append(row)
    for partition, items in groups.items():
        asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"),
                            [(items[0]["meter_id"].encode(), json.dumps({"v": 1, "source_id": "utility-test",
                                                                        "readings": items}).encode(), None)]))
    wait_for(lambda: sum(v["count"] for v in worker.get("/feeds/meters").values()) == len(rows), 60,
             what=f"{len(rows)} readings")
    held = {f"{m}/{bucket}": value for m in ("M-0001", "M-0002", "M-0003")
            for bucket, value in worker.get(f"/state/meters/{m}")["buckets"].items()}
    # Four learnt readings a meter: two hour buckets, and the first hour's mean in the long reference.
    assert sum(len(v) for k, v in held.items() if "/h" in k) == 12 and len([k for k in held if "/h" in k]) == 6
    app_id = cfg.runtime.app.id
    # Asking for one record more than expected reads everything there is, until the timeout.
    records = asyncio.run(read_all(kafka_bootstrap, f"{app_id}-meter-state-changelog", 3 + len(held) + 1, timeout=5))
    keys = [json.loads(r.key) for r in records]
    assert sorted(k for k in keys if "/" not in k) == ["M-0001", "M-0002", "M-0003"]
    buckets = [(k, r) for k, r in zip(keys, records) if "/" in k]
    assert len(keys) == len(set(keys))  # each meter's state and each bucket written once
    assert {k: pickle.loads(r.value) for k, r in buckets} == held  # holding the latest value
    # A meter's state and the buckets the message changed travel in one record batch, which
    # Kafka appends whole or not at all: same partition, consecutive offsets.
    for meter in ("M-0001", "M-0002", "M-0003"):
        mine = sorted((r.partition, r.offset) for k, r in zip(keys, records) if k.split("/")[0] == meter)
        assert len({p for p, _ in mine}) == 1 and [o for _, o in mine] == list(range(mine[0][1], mine[-1][1] + 1))

    later = base + (per_meter + 1) * 900
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"),
                        [(b"M-0002", meter_reading("M-0002", later + i * 900), None) for i in range(12)]))
    wait_for(lambda: worker.get("/feeds/meters")["M-0002"]["count"] == per_meter + 12, 60, what="12 more readings")
    detail = worker.get("/state/meters/M-0002")
    # Asking for more records than there are reads them all, until the timeout (past a commit).
    records = asyncio.run(read_all(kafka_bootstrap, f"{app_id}-meter-state-changelog", 100, timeout=8))
    writes = [pickle.loads(r.value) for r in records if json.loads(r.key) == "M-0002"][1:]  # after the first
    assert 1 <= len(writes) <= 3, len(writes)  # 12 messages, a commit or two while they were handled
    assert writes[-1]["count"] == detail["count"] and writes[-1]["pending"] == detail["pending"]


def test_a_backlog_after_a_long_recovery_is_processed_whole(kafka_bootstrap, tmp_path):
    """A worker restarting with real state (seconds of changelog to replay) and a backlog of
    single readings (its group never committed) processes every one of them and commits to
    the end. Unpatched faust-streaming 0.15 drops the readings fetched while recovery ends
    and never reads them again (faust-streaming/faust#596; streams.worker.faust_fixes):
    before the fix, 0 of 1,600 were read whenever this ran after the tests above."""
    import random

    import yaml
    from aiokafka.admin import AIOKafkaAdminClient

    from tests.bench.bench_power import _messages, county_meters, preload_state, warm_states
    from tests.helpers import without_cameras

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
        seen = {}

        def all_counted():
            seen.update(worker.get("/feeds/meters"))
            return sum(v["count"] for v in seen.values()) >= 1600 and seen

        try:
            feeds = wait_for(all_counted, 90, interval=1, what="all 1,600 readings counted")
        except AssertionError as exc:  # what the worker did instead: the story of a stall
            counted = sum(v["count"] for v in seen.values())
            raise AssertionError(f"{exc}\n{counted} readings of {len(seen)} meters counted; worker log:\n"
                                 f"{worker.log_tail(6000)}") from None
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


def test_a_large_batch_is_decoded_and_written_off_the_event_loop(kafka_bootstrap, tmp_path):
    """A message of 300 readings (over DECODE_ON_THREAD_BYTES) is decoded on a thread and its
    600 changed keys (over ENCODE_ON_THREAD_KEYS) serialised on a thread: every reading
    counted once, every meter's state in the changelog once, and the worker's event-loop
    probe reports how long the loop was held."""
    import yaml

    from streams.worker.changelog import ENCODE_ON_THREAD_KEYS
    from streams.worker.intake import DECODE_ON_THREAD_BYTES
    from tests.bench.bench_power import county_meters
    from tests.helpers import counter, without_cameras

    rows = county_meters(600)
    config_dir = without_cameras(isolated_config(tmp_path, "offloop", partitions=2))
    (config_dir / "meters.yaml").write_text(yaml.safe_dump({"utility": "test", "meters": rows}))
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    ts = (time.time() // 900) * 900 - 86400
    messages = []
    for partition in (0, 1):
        items = [{"meter_id": r["id"], "ts": ts, "power_kw": 5.0} for r in rows
                 if partition_for(r["id"], 2) == partition]
        value = json.dumps({"v": 1, "source_id": "utility-test", "readings": items}).encode()
        assert len(value) > DECODE_ON_THREAD_BYTES and 2 * len(items) > ENCODE_ON_THREAD_KEYS
        messages.append((items[0]["meter_id"].encode(), value, None))  # partitioned by its key
    asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), messages))
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        feeds = wait_for(lambda: (f := worker.get("/feeds/meters")) and sum(v["count"] for v in f.values()) >= 600
                         and f, 90, what="600 readings counted")
        assert all(feeds[r["id"]]["count"] == 1 for r in rows)
        changelog = f"{cfg.runtime.app.id}-meter-state-changelog"
        records = asyncio.run(read_all(kafka_bootstrap, changelog, 10_000, timeout=5))
        states = [json.loads(r.key) for r in records if "/" not in json.loads(r.key)]
        assert sorted(states) == sorted(r["id"] for r in rows)  # each meter's state once
        assert all(pickle.loads(r.value)["count"] == 1 for r in records if "/" not in json.loads(r.key))
        assert counter(worker, "shaftwatch_event_loop_lag_seconds_count") > 0
        assert counter(worker, 'shaftwatch_gc_pause_seconds_count{generation="0"}') > 0
    finally:
        worker.stop()
