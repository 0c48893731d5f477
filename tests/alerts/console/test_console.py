"""The alert console: its live feed on plain data, then the page in a real browser (Debian's
chromium driven by Playwright) against the real HTTP server, store and broker: sign-in,
the ranked list, evidence with its snapshot, an action and its audit line, and a new
incident pushed live from the ``alerts`` topic without reloading the page."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from alerts.console.live import LiveFeed
from alerts.evidence import EvidenceStore
from alerts.fusion import FusionRules
from alerts.store import AlertStore, published
from detectors.timeofday import LocalClock
from streams.config import load_config
from streams.contract.decoding import encode
from streams.contract.records import Incident
from streams.kafka.admin import ensure_topics, topic_plan
from streams.kafka.producer import KafkaSink
from tests.helpers import isolated_config, night_ts, serving

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "duty-token"


def test_a_page_that_cannot_keep_up_is_told_to_resync():
    async def run():
        feed = LiveFeed(queue_size=3)
        with feed.subscribe() as slow, feed.subscribe() as quick:
            for i in range(3):
                feed.publish({"type": "incident", "incident_id": f"I{i}"})
                assert (await quick.get())["incident_id"] == f"I{i}"
            feed.publish({"type": "incident", "incident_id": "I3"})  # slow's queue was full
            assert [slow.get_nowait() for _ in range(slow.qsize())] == [{"type": "resync"}]
            assert (await quick.get())["incident_id"] == "I3"
            feed.close()
            assert quick.get_nowait() is None and slow.get_nowait() is None
        assert feed.pages == set()
    asyncio.run(run())


def signal(sid: str, site: str, kind: str, strength: float, ts: float, evidence: list[str]) -> dict:
    return {"signal_id": sid, "site_id": site, "source_kind": kind, "source_id": f"{kind}-{site}", "kind": "test",
            "ts": ts, "strength": strength, "summary": f"{kind} at {site}", "details": {}, "evidence": evidence}


@pytest.fixture
def console_setup(kafka_bootstrap, tmp_path, monkeypatch):
    """A config, a store holding one corroborated night incident at S01 (with a camera
    snapshot) and a weak day one at S02."""
    monkeypatch.setenv("SHAFTWATCH_TOKEN_DUTY", TOKEN)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    cfg = load_config(isolated_config(tmp_path, "console"))
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    store = AlertStore(cfg.store_url)
    store.migrate()
    night = night_ts()
    _, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    snapshot = EvidenceStore(cfg.evidence_dir).save_snapshot("CAM-S01-A", night, "person-1", jpeg.tobytes())
    store.incidents.apply_signals([signal("v1", "S01", "vision", 0.9, night, [snapshot]),
                         signal("p1", "S01", "power", 0.8, night + 60, ["power-curve:M-0001"]),
                         signal("f1", "S01", "fence", 0.7, night + 120, ["fence-timeline:FZ-JS-1:1-2"]),
                         signal("w1", "S02", "power", 0.3, night + 12 * 3600, [])], FusionRules(), LocalClock())
    return cfg, store


@pytest.mark.broker
def test_live_feed_needs_a_token_and_says_hello(console_setup):
    cfg, _ = console_setup

    async def run():
        async with serving(cfg) as base, aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/live") as r:
                assert r.status == 401
            async with session.get(f"{base}/api/evidence?ref=snapshot:../../etc/passwd",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 404
            async with session.get(f"{base}/api/live", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
                assert await asyncio.wait_for(r.content.readline(), 5) == b'{"type": "hello"}\n'
            async with session.get(f"{base}/") as r:
                assert r.status == 200 and "ShaftWatch" in await r.text()
    asyncio.run(run())


@pytest.mark.broker
def test_the_console_in_a_real_browser(console_setup):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed here (make chromium installs it)")
    playwright = pytest.importorskip("playwright.async_api")
    cfg, store = console_setup

    async def run():
        async with serving(cfg) as base, playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = await browser.new_page()
                expect = playwright.expect
                await page.goto(base)
                await page.fill("#token", "wrong")
                await page.click("#sign-in button")
                await expect(page.locator("#sign-in-error")).to_contain_text("not accepted")

                await page.fill("#token", TOKEN)
                await page.click("#sign-in button")
                rows = page.locator("#incidents tbody tr")
                await expect(rows).to_have_count(2)
                await expect(page.locator("#sign-in")).to_be_hidden()
                await expect(rows.nth(0)).to_contain_text("S01")
                await expect(rows.nth(0)).to_contain_text("critical")
                await expect(rows.nth(1)).to_contain_text("S02")
                await expect(page.locator("#link")).to_contain_text("live")

                await rows.nth(0).click()
                await expect(page.locator("#detail-title")).to_contain_text("S01")
                await expect(page.locator("#evidence li")).to_have_count(3)
                await page.wait_for_function("() => { const i = document.querySelector('.evidence-img');"
                                             " return i && i.complete && i.naturalWidth === 160; }", timeout=10000)
                assert "#/incidents/" in page.url  # the link notifications carry opens this view

                await page.click("button[data-action=resolve]")
                await expect(page.locator("#action-error")).to_contain_text("needs a disposition")
                await page.fill("#note", "team 2 on the way")
                await page.click("button[data-action=acknowledge]")
                await expect(page.locator("#audit li").last).to_contain_text("值班员 duty-officer · acknowledge")
                await expect(page.locator("#audit li").last).to_contain_text("team 2 on the way")
                await expect(page.locator("button[data-action=acknowledge]")).to_be_disabled()
                await expect(rows.nth(0)).to_contain_text("acknowledged")

                # Fusion opens an incident elsewhere and publishes it: the page shows it
                # without a reload. (Published again if the server's reader of alerts had
                # not reached the end of the topic yet when the first one went out.)
                night = night_ts()
                incident, _ = store.incidents.apply_signal(signal("v2", "S03", "vision", 0.95, night + 300, []),
                                                 FusionRules(), LocalClock())
                async with KafkaSink(cfg.bootstrap_servers, "test") as sink:
                    deadline = time.monotonic() + 30
                    while True:
                        await sink.send(cfg.topic("alerts"), incident["id"], encode(Incident.of(published(incident))))
                        try:
                            await expect(rows).to_have_count(3, timeout=3000)
                            break
                        except AssertionError:
                            if time.monotonic() > deadline:
                                raise
                await expect(page.locator("#incidents tbody tr", has_text="S03")).to_have_count(1)
            finally:
                await browser.close()
    asyncio.run(run())
