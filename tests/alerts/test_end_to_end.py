"""The whole chain on the real broker: frames, readings and pings for two places become one
ranked incident backed by three sources, and weak ones elsewhere; a replay changes nothing;
a patrol acts on it."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from alerts.store import AlertStore
from streams.config import load_config
from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta
from streams.contract.records import Incident
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import (
    WorkerProcess, all_incidents, count_signals, isolated_config, night_ts, produce, read_all, serving, wait_for,
)

pytestmark = pytest.mark.broker


def feed(cfg) -> tuple[list, list]:
    t0 = night_ts() - 10 * 900
    readings = json.dumps({"v": 1, "source_id": "utility", "readings":
                           [{"meter_id": "M-0001", "ts": t0 + i * 900, "power_kw": 0.0} for i in range(8)] +
                           [{"meter_id": "M-0001", "ts": t0 + (8 + i) * 900, "power_kw": 32.0} for i in range(2)]})
    meters = [(b"M-0001", readings.encode(), None)]
    pings = []
    for k in range(3):  # a crew at S01 at night
        for i in range(3):
            pid = f"p1:crew{i}"
            pings.append((pid.encode(), json.dumps({
                "v": 1, "source_id": "CMCC", "device_pid": pid, "device_kind": "phone", "ts": t0 + 8 * 900 + k * 200 + i,
                "lon": 110.4128, "lat": 34.4310, "accuracy_m": 60}).encode(), None))
    day = t0 + 10 * 3600  # a lone passer-by at S07's cell fence, by day, who lingers: one weak signal
    for k in range(3):
        pings.append((b"p1:herder", json.dumps({"v": 1, "source_id": "CMCC", "device_pid": "p1:herder",
                                                 "device_kind": "phone", "ts": day + k * 200,
                                                 "cell_id": "460-00-37421-1021"}).encode(), None))
    return meters, pings


def camera_frames(t0: float) -> list:
    """Real footage as camera CAM-S01-A at S01: the empty scene, then a person walks in."""
    from tests.helpers import PEOPLE, jpegs
    frames = jpegs(PEOPLE, [0] * 3 + list(range(240, 320, 10)))
    return [(b"CAM-S01-A", jpeg, FrameMeta("CAM-S01-A", "S01", t0 + k, k + 1).headers())
            for k, jpeg in enumerate(frames)]


def test_two_sites_one_real_incident_ranked_first_and_replay_changes_nothing(kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.setenv("SHAFTWATCH_TOKEN_DUTY", "duty-token")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    config_dir = isolated_config(tmp_path, "e2e", api_clients=[
        {"name": "值班台 duty desk", "token_env": "SHAFTWATCH_TOKEN_DUTY", "role": "patrol"}])
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    store = AlertStore(cfg.store_url)
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        meters, pings = feed(cfg)
        frames = camera_frames(night_ts() - 8 * 900 + 300)
        asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), meters))
        asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), pings))
        asyncio.run(produce(kafka_bootstrap, cfg.topic("frames"), frames))

        def settled():
            incidents = store.incidents.ranked()
            real = [i for i in incidents if i["site_id"] == "S01"]
            # The herder's cell fence protects S07 and S08 and a cell gives no position: both sites hear of it.
            return len(incidents) == 3 and real and set(real[0]["draft"]["strongest"]) == {"vision", "power", "fence"} \
                and len(real[0]["draft"]["signal_ids"]) >= 6 and incidents
        incidents = wait_for(settled, 120, what="S01 with camera, power and fence evidence, and the weak ones")
        top, weak, weak2 = incidents
        assert top["site_id"] == "S01" and {weak["site_id"], weak2["site_id"]} == {"S07", "S08"}
        assert len([i for i in incidents if i["site_id"] == "S01"]) == 1
        assert top["severity"] == "critical" and weak["severity"] in ("info", "low")
        full = store.incidents.get(top["id"])
        kinds = sorted(f"{s['source_kind']}/{s['kind']}" for s in full["signals"])
        assert kinds == ["fence/crew_in_zone", "fence/zone_entry", "fence/zone_entry", "fence/zone_entry",
                         "power/reconnection", "vision/person_at_shaft"]
        assert all(s["evidence"] for s in full["signals"])
        before = (all_incidents(store), count_signals(store))

        # Replay the readings and pings (their detectors' state dedups them) and replay the
        # signals themselves, as after a crash of the fusion worker: nothing changes.
        asyncio.run(produce(kafka_bootstrap, cfg.topic("meter-readings"), meters))
        asyncio.run(produce(kafka_bootstrap, cfg.topic("fence-pings"), pings))
        signals = asyncio.run(read_all(kafka_bootstrap, cfg.topic("signals"), expect=before[1], timeout=10))
        asyncio.run(produce(kafka_bootstrap, cfg.topic("signals"), [(r.key, r.value, None) for r in signals]))
        time.sleep(8)
        after = (all_incidents(store), count_signals(store))
        assert [(i["id"], i["score"], i["state"]) for i in after[0]] == \
               [(i["id"], i["score"], i["state"]) for i in before[0]] and after[1] == before[1]

        # A patrol acknowledges it through the console API; the change is audited and published.
        async def act():
            async with serving(cfg) as server:
                base = f"{server}/api"
                async with aiohttp.ClientSession(headers={"Authorization": "Bearer duty-token"}) as session:
                    async with session.get(f"{base}/incidents") as r:
                        listed = (await r.json())["incidents"]
                    async with session.post(f"{base}/incidents/{top['id']}/acknowledge", json={"note": "on it"}) as r:
                        acked = await r.json()
                    async with session.post(f"{base}/incidents/{top['id']}/reopen") as r:
                        refused = r.status
                async with aiohttp.ClientSession() as anonymous:
                    async with anonymous.get(f"{base}/incidents") as r:
                        unauthorized = r.status
            return listed, acked, refused, unauthorized

        listed, acked, refused, unauthorized = asyncio.run(act())
        assert [i["id"] for i in listed] == [top["id"], weak["id"], weak2["id"]]
        assert acked["state"] == "acknowledged" and refused == 400 and unauthorized == 401  # no action "reopen"
        audit = store.incidents.get(top["id"])["audit"]
        assert audit[-1]["actor"] == "值班台 duty desk" and audit[-1]["action"] == "acknowledge"
        records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("alerts"), expect=100, timeout=8))
        latest = {}
        for r in records:
            latest[r.key.decode()] = decode(Incident, r.value)
        assert latest[top["id"]].state == "acknowledged" and latest[weak["id"]].state == "new"
    finally:
        worker.stop()
