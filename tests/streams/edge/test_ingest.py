"""The utility's HTTP ingest on a real server and the real broker."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from streams.config import load_config
from streams.contract.decoding import decode, decode_message
from streams.contract.records import DeadLetter, FencePing, MeterReading
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import WorkerProcess, isolated_config, read_all, serving, wait_for

pytestmark = pytest.mark.broker
TOKEN = "utility-secret-for-tests"
T0 = (time.time() // 900) * 900 - 10 * 900


@pytest.fixture
def ingest(kafka_bootstrap, tmp_path, monkeypatch):
    """Tokens in the environment, an isolated config and its topics; `post` runs the real server."""
    monkeypatch.setenv("SHAFTWATCH_TOKEN_UTILITY", TOKEN)
    monkeypatch.setenv("SHAFTWATCH_TOKEN_CMCC", "carrier-token")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    config_dir = isolated_config(tmp_path, "ingest")
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    return cfg, config_dir


async def post(cfg, path, body, content_type="application/json", token=TOKEN):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with serving(cfg) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}{path}", data=body, headers=headers) as response:
            return response.status, await response.json()


def test_tokens_are_required_and_scoped(ingest):
    cfg, _ = ingest
    body = json.dumps([{"meter_id": "M-0001", "ts": T0, "power_kw": 0.0}])
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token=None))[0] == 401
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token="guess"))[0] == 401
    status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", body, token="carrier-token"))
    assert status == 403 and "may push fences" in answer["error"]


def test_a_rotated_token_and_its_predecessor_are_valid_together(ingest, monkeypatch):
    """Rotation: the variable holds "new,old" until every client has the new token."""
    cfg, _ = ingest
    monkeypatch.setenv("SHAFTWATCH_TOKEN_UTILITY", f"utility-token-2026-12, {TOKEN}")
    body = json.dumps([{"meter_id": "M-0001", "ts": T0, "power_kw": 0.0}])
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token="utility-token-2026-12"))[0] == 200
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token=TOKEN))[0] == 200
    monkeypatch.setenv("SHAFTWATCH_TOKEN_UTILITY", "utility-token-2026-12")  # the old one taken out
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token=TOKEN))[0] == 401
    assert asyncio.run(post(cfg, "/ingest/meter-readings", body, token="utility-token-2026-12,"))[0] == 401


def test_rows_are_validated_one_by_one(ingest, kafka_bootstrap):
    cfg, _ = ingest
    rows = [
        {"meter_id": "M-0001", "ts": T0, "power_kw": 0.0},
        {"meter_id": "M-0002", "ts": "2026-11-23T01:15:00+08:00", "energy_kwh": 0.1},
        {"meter_id": "M-0003", "ts": T0, "power_kw": -2},
        {"meter_id": "M-9999", "ts": T0, "power_kw": 1},
        {"meter_id": "M-0001", "ts": T0, "power_kw": 0.0},
        {"meter_id": "M-0004", "ts": "yesterday", "power_kw": 1},
        {"meter_id": "M-0005", "ts": "2026-11-23 01:15:00", "power_kw": 1},
        {"meter_id": "M-0006", "ts": T0, "power_kw": 1, "source_id": "someone-else"},
    ]
    status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", json.dumps({"readings": rows})))
    assert status == 200
    assert (answer["accepted"], answer["rejected"], answer["source_id"]) == (2, 6, "utility-qingling")
    reasons = {e["row"]: e["reason"] for e in answer["errors"]}
    assert "power_kw is negative" in reasons[3]
    assert "unknown meter 'M-9999'" in reasons[4]
    assert reasons[5] == "duplicate of row 1 (same meter id and time)"
    assert "neither epoch seconds nor an ISO 8601 time" in reasons[6]
    assert "has no time zone" in reasons[7]
    assert "set by the server" in reasons[8]

    messages = asyncio.run(read_all(kafka_bootstrap, cfg.topic("meter-readings"), expect=2, timeout=15))
    readings = [r for m in messages for r in decode_message(MeterReading, m.value)[0]]
    assert sorted((r.meter_id, r.source_id) for r in readings) == [("M-0001", "utility-qingling"),
                                                                  ("M-0002", "utility-qingling")]
    assert any(r.ts == 1795367700.0 for r in readings)  # 2026-11-23T01:15+08:00
    letters = [decode(DeadLetter, m.value) for m in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=6, timeout=15))]
    assert len(letters) == 6 and all(d.source == "meters-ingest-http" for d in letters)
    assert json.loads(letters[0].original_value()) == rows[2]


def test_csv_and_unreadable_bodies(ingest, kafka_bootstrap):
    cfg, _ = ingest
    csv_body = ("meter_id,ts,interval_s,energy_kwh,power_kw,register_kwh\n"
                f"M-0010,{T0},900,2.5,10,1000\n"
                f"M-0011,{T0},900,,,\n"
                f"M-0012,{T0},900,abc,,\n")
    status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", csv_body, content_type="text/csv"))
    assert status == 200 and (answer["accepted"], answer["rejected"]) == (1, 2)
    assert "needs energy_kwh or power_kw" in answer["errors"][0]["reason"]
    assert "energy_kwh: expected a number, got 'abc'" in answer["errors"][1]["reason"]
    status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", "meter,when\nx,y\n", content_type="text/csv"))
    assert status == 400 and "unknown: ['meter', 'when']" in answer["error"]
    status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", "{oops"))
    assert status == 400
    status, _ = asyncio.run(post(cfg, "/ingest/meter-readings", "x", content_type="application/xml"))
    assert status == 415
    letters = [decode(DeadLetter, m.value) for m in
               asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=5, timeout=15))]
    assert any(d.original_value() == b"{oops" and "body is not JSON" in d.reason for d in letters)


def test_resent_batch_creates_no_duplicate_readings(ingest, kafka_bootstrap, tmp_path):
    cfg, config_dir = ingest
    worker = WorkerProcess(config_dir, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        rows = [{"meter_id": m.id, "ts": T0 + i * 900, "power_kw": 0.0}
                for m in cfg.meters.meters for i in range(5)]
        body = json.dumps(rows)
        for _ in range(2):
            status, answer = asyncio.run(post(cfg, "/ingest/meter-readings", body))
            assert status == 200 and answer["accepted"] == 200
        # 400 readings arrived, 200 distinct ones were counted; wait for the second batch to pass.
        def settled():
            text = __import__("urllib.request").request.urlopen(worker.url("/metrics")).read().decode()
            return 'shaftwatch_meter_readings_total{outcome="duplicate_or_late"} 200.0' in text
        wait_for(settled, 60, what="second batch processed as duplicates")
        feeds = worker.get("/feeds/meters")
        assert len(feeds) == 40 and all(v["count"] == 5 for v in feeds.values())
    finally:
        worker.stop()


def test_openapi_is_served_and_published(ingest):
    cfg, _ = ingest
    from streams.edge.ingest.openapi import openapi
    from tests.helpers import REPO
    published = json.loads((REPO / "streams" / "schemas" / "openapi.json").read_text())
    assert published == json.loads(json.dumps(openapi()))
    row = published["components"]["schemas"]["MeterReadingRow"]
    assert row["required"] == ["meter_id", "ts"] and "source_id" not in row["properties"]


def test_fence_pings_are_pseudonymized_before_kafka(ingest, kafka_bootstrap, monkeypatch):
    cfg, _ = ingest
    monkeypatch.setenv("SHAFTWATCH_PSEUDONYM_KEY", "county-key")
    from streams.edge.pseudonyms import pseudonymize
    clear = "8613912345678"
    now = time.time() - 60
    rows = [
        {"device_id": clear, "device_kind": "phone", "ts": now, "lon": 110.4127, "lat": 34.4311, "accuracy_m": 50,
         "event": "enter"},
        {"device_id": "VT-77", "device_kind": "vehicle_terminal", "ts": now, "cell_id": "460-00-37421-1021"},
        {"device_id": "", "device_kind": "phone", "ts": now, "cell_id": "x"},
        {"device_pid": "p1:forged", "device_kind": "phone", "ts": now, "cell_id": "x"},
        {"device_id": "1", "device_kind": "phone", "ts": now, "zone_id": "FZ-NOPE"},
    ]
    status, answer = asyncio.run(post(cfg, "/ingest/fence-pings", json.dumps({"pings": rows}), token="carrier-token"))
    assert status == 200 and (answer["accepted"], answer["rejected"]) == (2, 3), answer
    reasons = [e["reason"] for e in answer["errors"]]
    assert "device_id is missing or empty" in reasons[0]
    assert "device_pid set by the server" in reasons[1]
    assert "unknown fence zone 'FZ-NOPE'" in reasons[2]

    camara = [{
        "id": "1", "source": "https://carrier.example/geofencing", "specversion": "1.0",
        "type": "org.camaraproject.geofencing-subscriptions.v0.area-left", "time": "2026-11-23T01:40:00Z",
        "data": {"subscriptionId": "s1", "device": {"phoneNumber": "+8613912345678"},
                 "area": {"areaType": "CIRCLE", "center": {"latitude": 34.4311, "longitude": 110.4127}, "radius": 800}},
    }, {"type": "org.camaraproject.geofencing-subscriptions.v0.subscription-ends", "data": {}}]
    status, answer = asyncio.run(post(cfg, "/ingest/fence-pings/camara", json.dumps(camara),
                                      content_type="application/cloudevents-batch+json", token="carrier-token"))
    assert status == 200 and (answer["accepted"], answer["rejected"]) == (1, 1)
    assert "not a CAMARA geofencing notification" in answer["errors"][0]["reason"]

    records = asyncio.run(read_all(kafka_bootstrap, cfg.topic("fence-pings"), expect=3, timeout=15))
    from streams.contract.partitioning import partition_for
    pings = []
    for r in records:
        batch = decode_message(FencePing, r.value)[0]
        assert all(partition_for(p.device_pid, 2) == r.partition for p in batch)  # batches stay on their partition
        pings += batch
    phone = pseudonymize(b"county-key", clear)
    assert pseudonymize(b"county-key", "+8613912345678") == phone
    assert sorted(p.event or "" for p in pings if p.device_pid == phone) == ["enter", "exit"]
    left = next(p for p in pings if p.event == "exit")
    assert (left.accuracy_m, left.ts) == (800, 1795398000.0)  # 2026-11-23T01:40Z
    assert pseudonymize(b"county-key", "VT-77") in {p.device_pid for p in pings}
    assert all(p.source_id == "CMCC" for p in pings)
    # No clear id anywhere on Kafka: not in pings, not in dead letters.
    letters = asyncio.run(read_all(kafka_bootstrap, cfg.topic("dead-letters"), expect=4, timeout=10))
    for blob in [r.value for r in records] + [r.value for r in letters]:
        assert b"3912345678" not in blob and b"VT-77" not in blob
