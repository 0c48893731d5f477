"""The carriers' side of the fence: `shaftwatch fences publish` against local stand-ins for
two carriers' CAMARA geofencing endpoints (tests/sim/camara_carrier.py, a mock: no
carrier can be reached from here), with their events sent to the real server's ingest, on
the real broker and store."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
import yaml

from alerts.store import AlertStore
from alerts.store.schema import audit
from streams.config import load_config
from streams.config.fences import CamaraSettings
from streams.contract.decoding import decode_message
from streams.contract.records import FencePing
from streams.edge.fence_publisher import FencePublisher, covering_circles, e164, zones_geojson
from streams.edge.pseudonyms import pseudonymize
from streams.kafka.admin import ensure_topics, topic_plan
from streams.ops.cli import main as shaftwatch
from tests.helpers import free_port, isolated_config, read_all, serving
from tests.sim.camara_carrier import PREFIX, CarrierStandIn

KEY = "county-key-for-fences"
A = "+8613900000001"  # a CMCC subscriber on the watchlist
B = "139 0000 0002"  # a CUCC subscriber on the watchlist, written as people write it
C = "+8613900000003"  # not on the watchlist
POLYGON_ZONES = 4  # configs/fences.yaml: four polygon zones, one of cell ids


def test_circles_cover_each_zone_and_split_large_ones():
    cfg = load_config(Path(__file__).resolve().parents[3] / "configs")
    from detectors.geometry import metres_between, point_in_polygon
    for zone in cfg.fences.zones:
        for limit in (2000, 300):
            settings = CamaraSettings(sink="http://x/ingest/fence-pings/camara", max_radius_m=limit)
            circles = covering_circles(zone, settings)
            if zone.polygon is None:
                assert circles == []
                continue
            assert all(c.radius_m <= limit * 1.01 + 1 for c in circles)
            polygon = zone.zone().polygon
            west = min(x for x, _ in polygon)
            east = max(x for x, _ in polygon)
            south = min(y for _, y in polygon)
            north = max(y for _, y in polygon)
            # every point of the zone (on a 20 x 20 grid) lies in some circle
            for i in range(21):
                for j in range(21):
                    x, y = west + (east - west) * i / 20, south + (north - south) * j / 20
                    if point_in_polygon(x, y, polygon):
                        assert any(metres_between((x, y), (c.lon, c.lat)) <= c.radius_m for c in circles), (zone.id, x, y)
            if limit == 300:
                assert len(circles) > 1  # the demo zones are 600 m to 1 km across
    tiny = CamaraSettings(sink="http://x/ingest/fence-pings/camara", min_radius_m=1000)
    assert {c.radius_m for z in cfg.fences.zones for c in covering_circles(z, tiny)} == {1000}


def test_numbers_are_read_as_e164_and_zones_exported_with_their_warning():
    assert e164("+86 139-0000-0001") == "+8613900000001"
    assert e164("13900000001") == "+8613900000001"
    assert e164("0913-1234567") is None and e164("hello") is None
    cfg = load_config(Path(__file__).resolve().parents[3] / "configs")
    geo = zones_geojson(cfg.fences)
    assert [f["id"] for f in geo["features"]] == [z.id for z in cfg.fences.zones]
    first = geo["features"][0]
    assert first["geometry"]["type"] == "Polygon" and first["geometry"]["coordinates"][0][0] == \
        first["geometry"]["coordinates"][0][-1]
    assert "严禁" in first["properties"]["warning_sms"]
    assert geo["features"][-1]["geometry"] is None and geo["features"][-1]["properties"]["cells"]


def configure(tmp_path: Path, monkeypatch, kafka_bootstrap: str, carriers: list[CarrierStandIn], port: int):
    monkeypatch.setenv("SHAFTWATCH_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    for carrier in carriers:
        monkeypatch.setenv(f"SHAFTWATCH_TOKEN_{carrier.name}", f"sink-token-{carrier.name}")
        monkeypatch.setenv(f"SHAFTWATCH_CAMARA_{carrier.name}", carrier.token)
    monkeypatch.setenv("SHAFTWATCH_TOKEN_OPS_DESK", "ops-desk-token")
    config_dir = isolated_config(tmp_path, "fence-publish", api_clients=[
        {"name": "ops-desk", "token_env": "SHAFTWATCH_TOKEN_OPS_DESK", "role": "ops"}])
    watchlist = tmp_path / "private" / "watchlist.txt"
    watchlist.parent.mkdir()
    watchlist.write_text("# key persons\n" + "".join(pseudonymize(KEY.encode(), e164(n)) + "\n" for n in (A, B)))
    fences = yaml.safe_load((config_dir / "fences.yaml").read_text())
    fences["watchlist_file"] = str(watchlist)
    fences["camara"]["sink"] = f"http://127.0.0.1:{port}/ingest/fence-pings/camara"
    fences["camara"]["endpoints"] = [{"carrier": c.name, "api_root": c.base, "token_env": f"SHAFTWATCH_CAMARA_{c.name}"}
                                     for c in carriers]
    (config_dir / "fences.yaml").write_text(yaml.safe_dump(fences, allow_unicode=True))
    return config_dir


def publish(config_dir: Path, monkeypatch, lines: list[str]) -> tuple[int, str]:
    """`shaftwatch fences publish` as ops run it: the numbers on standard input."""
    out = io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    monkeypatch.setattr("sys.stdout", out)
    code = shaftwatch(["--config", str(config_dir), "fences", "publish"])
    return code, out.getvalue()


@pytest.mark.broker
def test_publish_watch_lapse_renew_and_withdraw(kafka_bootstrap, tmp_path, monkeypatch):
    port = free_port()

    async def run():
        async with CarrierStandIn("CMCC", "cmcc-api-token", {A}) as cmcc, \
                CarrierStandIn("CUCC", "cucc-api-token", {e164(B)}) as cucc:
            config_dir = configure(tmp_path, monkeypatch, kafka_bootstrap, [cmcc, cucc], port)
            cfg = load_config(config_dir)
            await ensure_topics(kafka_bootstrap, topic_plan(cfg))
            store = AlertStore(cfg.store_url)
            async with serving(cfg, port):
                # 1. Publish: each number at the carrier that serves it, two subscriptions
                # (entered, left) per zone circle; the others refused by line, never echoed.
                code, text = await asyncio.to_thread(publish, config_dir, monkeypatch, [A, B, C, "not a number"])
                assert code == 1, text
                assert f"CMCC: {2 * POLYGON_ZONES} created, 0 renewed, 0 kept, 0 deleted, 1 numbers not served" in text
                assert f"CUCC: {2 * POLYGON_ZONES} created, 0 renewed, 0 kept, 0 deleted, 1 numbers not served" in text
                assert "refused line 3: not on the watchlist" in text and "refused line 4: not a phone number" in text
                assert "zone FZ-SM-1 has only cell ids" in text
                assert "3900000003" not in text
                await cmcc.settled()
                await cucc.settled()
                # subscription-started is acknowledged (no longer a bad row), and recorded
                assert {(kind, status) for kind, status, _ in cmcc.sink_answers} == {("subscription-started", 200)}
                assert all(answer["acknowledged"] == 1 and answer["rejected"] == 0 for _, _, answer in cmcc.sink_answers)
                watching = store.fence_subscriptions.watching()
                assert len(watching) == 4 * POLYGON_ZONES and {r["status"] for r in watching} == {"active"}
                pid_a = pseudonymize(KEY.encode(), A)
                assert {r["device_pid"] for r in watching if r["carrier"] == "CMCC"} == {pid_a}
                # the clear numbers went to the carriers only: nowhere in the store
                database = Path(cfg.store_url.removeprefix("sqlite:///")).read_bytes()
                assert b"3900000001" not in database and b"3900000002" not in database

                # 2. Published again at once: everything kept; CMCC is asked only whether it
                # serves B (nothing about a number is kept between runs, so it is asked again).
                asked = len(cmcc.requests)
                code, text = await asyncio.to_thread(publish, config_dir, monkeypatch, [A, B])
                assert code == 0 and f"CMCC: 0 created, 0 renewed, {2 * POLYGON_ZONES} kept" in text, text
                assert cmcc.requests[asked:] == [("POST", "/geofencing-subscriptions/v0.3/subscriptions")]

                # 3. A enters the zones; the carrier leaves the device out, as the spec allows.
                entered = cmcc.enter(A)
                await cmcc.settled()
                assert len(entered) == POLYGON_ZONES
                answers = [a for kind, _, a in cmcc.sink_answers if kind == "area-entered"]
                assert [a["accepted"] for a in answers] == [1] * POLYGON_ZONES, answers
                pings = []
                for message in await read_all(kafka_bootstrap, cfg.topic("fence-pings"), expect=POLYGON_ZONES,
                                              timeout=20):
                    pings += decode_message(FencePing, message.value)[0]
                assert {(p.device_pid, p.event, p.source_id) for p in pings} == {(pid_a, "enter", "CMCC")}
                assert {p.zone_id for p in pings} == {z.id for z in cfg.fences.zones if z.polygon is not None}

                # An area event with neither a device nor a subscription of ours is refused.
                stray = {"id": "x1", "source": "https://cmcc.carrier.example", "specversion": "1.0",
                         "type": PREFIX + "area-entered", "time": "2026-12-02T01:00:00Z",
                         "data": {"subscriptionId": "someone-elses",
                                  "area": {"areaType": "CIRCLE", "center": {"latitude": 34.43, "longitude": 110.41},
                                           "radius": 500}}}
                async with aiohttp.ClientSession() as session:
                    async with session.post(cfg.fences.camara.sink, data=json.dumps(stray), headers={
                            "Content-Type": "application/cloudevents+json",
                            "Authorization": "Bearer sink-token-CMCC"}) as r:
                        answer = await r.json()
                assert (answer["accepted"], answer["rejected"]) == (0, 1)
                assert "not one we made" in answer["errors"][0]["reason"]

                # 4. The network ends one of A's subscriptions: acknowledged, and ops see the
                # fence gone silent (store, audit, console API, metric).
                lost = entered[0]
                cmcc.end(lost, "NETWORK_TERMINATED", "cell site maintenance")
                await cmcc.settled()
                lapsed = store.fence_subscriptions.lapsed()
                assert [(r["subscription_id"], r["ended_reason"]) for r in lapsed] == [(lost, "NETWORK_TERMINATED")]
                with store.engine.connect() as c:
                    trail = [dict(r._mapping) for r in c.execute(sa.select(audit))]
                assert any(a["action"] == "fence_subscription_ended" and a["detail"]["subscription_id"] == lost
                           and a["actor"] == "carrier:CMCC" for a in trail)
                async with aiohttp.ClientSession(headers={"Authorization": "Bearer ops-desk-token"}) as session:
                    async with session.get(f"http://127.0.0.1:{port}/api/fence-subscriptions") as r:
                        seen = await r.json()
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                        metrics = await r.text()
                assert [(s["carrier"], s["subscription_id"], s["ended_reason"]) for s in seen["lapsed"]] == [
                    ("CMCC", lost, "NETWORK_TERMINATED")]
                assert seen["counts"]["CMCC"] == {"active": 2 * POLYGON_ZONES - 1, "ended": 1}
                assert 'shaftwatch_fence_subscriptions_ended_total{carrier="CMCC",reason="NETWORK_TERMINATED"}' in metrics

                # 5. Publishing again renews what lapsed, and only that.
                code, text = await asyncio.to_thread(publish, config_dir, monkeypatch, [A, B])
                assert code == 0 and f"CMCC: 0 created, 1 renewed, {2 * POLYGON_ZONES - 1} kept" in text, text
                assert store.fence_subscriptions.lapsed() == []
                assert len(cmcc.subscriptions) == 2 * POLYGON_ZONES and lost not in cmcc.subscriptions

                # 6. Six days on, everything expires within the renewal window: renewed, the
                # new one made before the old one is deleted; SUBSCRIPTION_DELETED is no lapse.
                later = time.time() + 6 * 86400
                publisher = FencePublisher(cfg.fences, store.fence_subscriptions, KEY.encode(),
                                           {"CMCC": cmcc.token, "CUCC": cucc.token},
                                           {"CMCC": "sink-token-CMCC", "CUCC": "sink-token-CUCC"}, now=lambda: later)
                before = set(cmcc.subscriptions)
                report = await publisher.publish([A, B])
                assert [(c.renewed, c.kept) for c in report.carriers] == [(2 * POLYGON_ZONES, 0)] * 2, report.text()
                assert not set(cmcc.subscriptions) & before and len(cmcc.subscriptions) == 2 * POLYGON_ZONES
                posts = [i for i, (m, _) in enumerate(cmcc.requests) if m == "POST"]
                deletes = [i for i, (m, _) in enumerate(cmcc.requests) if m == "DELETE"]
                assert posts[-1] < deletes[-1] and posts[-2 * POLYGON_ZONES] < deletes[-2 * POLYGON_ZONES]
                await cmcc.settled()
                assert store.fence_subscriptions.lapsed(now=time.time()) == []

                # 7. B leaves the watchlist: B's subscriptions are deleted at CUCC.
                report = await publisher.publish([A])
                assert report.carriers[1].deleted == 2 * POLYGON_ZONES and cucc.subscriptions == {}
                await cucc.settled()
                assert {r["carrier"] for r in store.fence_subscriptions.watching()} == {"CMCC"}

            # Without our token at a carrier nothing is sent there, and the command says why.
            monkeypatch.delenv("SHAFTWATCH_CAMARA_CUCC")
            code, text = await asyncio.to_thread(publish, config_dir, monkeypatch, [A])
            assert code == 1 and "CUCC" in text and "no token" in text

    asyncio.run(run())
