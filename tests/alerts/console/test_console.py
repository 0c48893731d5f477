"""The alert console: its live feed on plain data; its API (sessions, CSRF, roles,
throttling, machine clients) against the real HTTP server and store; then the page in a
real browser (Debian's chromium driven by Playwright) against the running app with the
real broker, a real worker and the store: sign-in per role, evidence that reads at a
glance, audited actions, silences for ops only, a new incident pushed live, Chinese and
English, and phone width. Screenshots at 1440 and 390 px are kept in
test-artifacts/console/."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from alerts.console.live import LiveFeed
from alerts.store import incidents as incidents_module
from streams.contract.decoding import encode
from streams.contract.records import Signal
from tests.alerts.console.clients import (
    CHROMIUM, CHROMIUM_ARGS, MACHINE_TOKEN, PASSWORDS, browser_like, sign_in, signed_in_page,
)
from tests.helpers import REPO, WorkerProcess, night_ts, produce, serving

ARTIFACTS = REPO / "test-artifacts" / "console"


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


@pytest.mark.broker
def test_sessions_csrf_roles_throttling_and_machine_clients(console_setup):
    cfg, store = console_setup

    async def run():
        async with serving(cfg) as base:
            async with aiohttp.ClientSession() as anonymous:
                async with anonymous.get(f"{base}/api/incidents") as r:
                    assert r.status == 401
                async with anonymous.get(f"{base}/api/live") as r:
                    assert r.status == 401
                async with anonymous.get(f"{base}/api/incidents",
                                         headers={"Authorization": f"Bearer {MACHINE_TOKEN}"}) as r:
                    assert r.status == 200 and [i["site_id"] for i in (await r.json())["incidents"]] == ["S01", "S02"]
                async with anonymous.post(f"{base}/api/silences", json={"site_id": "S01", "duration_s": 60,
                                          "reason": "x"}, headers={"Authorization": f"Bearer {MACHINE_TOKEN}"}) as r:
                    assert r.status == 403  # a patrol client may not silence
                async with anonymous.get(f"{base}/api/evidence?ref=snapshot:../../etc/passwd",
                                         headers={"Authorization": f"Bearer {MACHINE_TOKEN}"}) as r:
                    assert r.status == 404
                async with anonymous.get(f"{base}/") as r:
                    assert r.status == 200 and "ShaftWatch" in await r.text()

            async with browser_like() as duty:
                answer = await sign_in(duty, base, "duty")
                assert answer["role"] == "patrol" and answer["may"] == {
                    "act": True, "silence": False, "ledger": False, "config": False, "users": False}
                flags = answer["set_cookie"]
                assert flags.startswith("shaftwatch_session=") and "HttpOnly" in flags
                assert "SameSite=Strict" in flags and "Max-Age=43200" in flags
                incident = (await (await duty.get(f"{base}/api/incidents")).json())["incidents"][0]
                assert incident["site_name"] and incident["township"] and incident["seen"]["persons"] == 3
                assert incident["seen"]["vehicles"] == 1 and incident["seen"]["power_kw"] == 31.2
                assert incident["seen"]["devices"] == 5
                act = f"{base}/api/incidents/{incident['id']}/acknowledge"
                async with duty.post(act, json={"note": "on my way"}) as r:
                    assert r.status == 403 and "CSRF" in (await r.json())["error"]  # no token: refused
                async with duty.post(act, json={"note": "on my way"}, headers={"X-CSRF-Token": "guessed"}) as r:
                    assert r.status == 403
                async with duty.post(act, json={"note": "on my way"}, headers={"X-CSRF-Token": answer["csrf"]}) as r:
                    assert r.status == 200 and (await r.json())["state"] == "acknowledged"
                async with duty.post(f"{base}/api/silences", json={"site_id": "S02", "duration_s": 600, "reason": "x"},
                                     headers={"X-CSRF-Token": answer["csrf"]}) as r:
                    assert r.status == 403
                async with duty.get(f"{base}/api/users") as r:
                    assert r.status == 403
                async with duty.post(f"{base}/api/logout", headers={"X-CSRF-Token": answer["csrf"]}) as r:
                    assert r.status == 200
                async with duty.get(f"{base}/api/incidents") as r:
                    assert r.status == 401  # the session ended

            async with browser_like() as ops:
                answer = await sign_in(ops, base, "ops")
                csrf = {"X-CSRF-Token": answer["csrf"]}
                async with ops.post(f"{base}/api/silences", json={"site_id": "S02", "duration_s": 600,
                                                                  "reason": "licensed backfill"}, headers=csrf) as r:
                    assert r.status == 201
                    silence_id = (await r.json())["id"]
                async with ops.post(f"{base}/api/silences/{silence_id}/end", headers=csrf) as r:
                    assert r.status == 200 and (await r.json())["ends_at"] <= time.time()
                async with ops.get(f"{base}/api/config") as r:
                    assert r.status == 200 and "fusion" in (await r.json())["thresholds"]

            async with browser_like() as admin:
                answer = await sign_in(admin, base, "admin")
                async with admin.post(f"{base}/api/users", json={"username": "zhou", "role": "patrol"},
                                      headers={"X-CSRF-Token": answer["csrf"]}) as r:
                    assert r.status == 201
                    one_time = (await r.json())["one_time_password"]
            async with browser_like() as zhou:
                async with zhou.post(f"{base}/api/login", json={"username": "zhou", "password": one_time}) as r:
                    assert r.status == 200

            async with browser_like() as guesser:
                for _ in range(5):
                    async with guesser.post(f"{base}/api/login", json={"username": "ops", "password": "guess"}) as r:
                        assert r.status == 401
                async with guesser.post(f"{base}/api/login", json={"username": "ops",
                                                                   "password": PASSWORDS["ops"]}) as r:
                    assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even the right one waits

    asyncio.run(run())
    trail = store.incidents.get(all_open(store)[0]["id"])["audit"]
    assert ("duty", "acknowledge") in [(a["actor"], a["action"]) for a in trail]


def all_open(store):
    return store.incidents.ranked()


@pytest.mark.broker
def test_the_console_in_a_real_browser(console_setup, kafka_bootstrap, tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed here (make chromium installs it)")
    playwright = pytest.importorskip("playwright.async_api")
    cfg, store = console_setup
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(Path(cfg.config_dir), kafka_bootstrap, tmp_path / "worker.log").start()

    async def run():
        expect = playwright.expect
        async with serving(cfg) as base, playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                # A patrol member at a desk, in Chinese (the default).
                page = await (await browser.new_context(viewport={"width": 1440, "height": 1000})).new_page()
                await page.goto(base)
                await page.fill("#username", "duty")
                await page.fill("#password", "not the password")
                await page.click("#sign-in button")
                await expect(page.locator("#sign-in-error")).to_contain_text("不正确")
                await page.fill("#password", PASSWORDS["duty"])
                await page.click("#sign-in button")
                rows = page.locator("#incidents tbody tr")
                await expect(rows).to_have_count(2)
                await expect(rows.nth(0)).to_contain_text("S01")
                await expect(rows.nth(0)).to_contain_text("金山镇")
                await expect(rows.nth(0)).to_contain_text("人员×3 车辆×1 · 断电线路 31 kW · 围栏内 5 台设备")
                await expect(rows.nth(0)).to_contain_text("紧急")
                await expect(page.locator("#who")).to_contain_text("值班员 王")
                await expect(page.locator("nav button[data-view=silences]")).to_be_hidden()  # patrol: no silences
                await expect(page.locator("#link")).to_contain_text("实时")

                await rows.nth(0).click()
                await expect(page.locator("#detail-title")).to_contain_text("S01")
                await page.wait_for_function("() => { const i = document.querySelector('.evidence-img');"
                                             " return i && i.complete && i.naturalWidth === 160; }", timeout=10000)
                await expect(page.locator("svg.chart polyline.seen")).to_have_count(1)
                await expect(page.locator("svg.chart line.expected")).to_have_count(1)
                await expect(page.locator("svg.timeline rect.device")).to_have_count(5)
                await expect(page.locator("#audit li", has_text="新增证据 ×3")).to_have_count(1)
                await expect(page.locator("#evidence-more")).to_be_hidden()  # all 4 of its signals are shown
                await page.screenshot(path=str(ARTIFACTS / "incident-1440.png"), full_page=True)
                # An incident with more signals than a page shows says so (a site fed for weeks).
                shown = incidents_module.SHOWN_SIGNALS
                monkeypatch.setattr(incidents_module, "SHOWN_SIGNALS", 3)
                await rows.nth(0).click()
                await expect(page.locator("#evidence-more")).to_have_text("显示最新 3 条证据，共 4 条")
                await expect(page.locator(".evidence-img")).to_have_count(0)  # the oldest, the camera's, left out
                monkeypatch.setattr(incidents_module, "SHOWN_SIGNALS", shown)
                await rows.nth(0).click()
                await expect(page.locator("#evidence-more")).to_be_hidden()

                # A change without the session's CSRF token is refused, even from the page itself.
                status = await page.evaluate("""async (id) => (await fetch(`/api/incidents/${id}/acknowledge`,
                    {method: 'POST', body: '{}', headers: {'Content-Type': 'application/json'}})).status""",
                                             await rows.nth(0).get_attribute("data-id"))
                assert status == 403

                await page.fill("#note", "二队出发 team 2 on the way")
                await page.click("button[data-action=acknowledge]")
                await expect(page.locator("#audit li").last).to_contain_text("duty · 确认")
                await expect(page.locator("#audit li").last).to_contain_text("team 2 on the way")
                await page.select_option("#disposition", "illegal_mining_confirmed")
                await page.click("button[data-action=resolve]")
                await expect(page.locator("#audit li").last).to_contain_text("duty · 销号")
                await expect(rows).to_have_count(1)  # resolved: off the open list

                # Signals produced on the broker: the worker fuses them, the page shows the new
                # critical incident without a reload, with its banner.
                night = night_ts()
                fresh = [Signal.of(identity=(k,), site_id="S03", source_kind=kind, source_id=f"{kind}-S03",
                                   kind=name, ts=night + 300 + k, strength=0.95, summary=f"{name} at S03",
                                   details={"labels": {"person": 2}} if kind == "vision" else {"kw": 20.0},
                                   evidence=[]) for k, (kind, name) in enumerate(
                                       [("vision", "person_at_shaft"), ("power", "reconnection")])]
                await produce(kafka_bootstrap, cfg.topic("signals"), [(s.site_id.encode(), encode(s), None)
                                                                      for s in fresh])
                await expect(page.locator("#incidents tbody tr", has_text="S03")).to_have_count(1, timeout=60000)
                await expect(page.locator("#urgent")).to_contain_text("S03")

                await page.click("#language")
                await expect(page.locator("nav button[data-view=incidents]")).to_have_text("Incidents")
                await expect(page.locator("#incidents thead")).to_contain_text("Severity")

                # Ops can silence; the map shows the shafts.
                ops = await signed_in_page(browser, base, "ops", 1440, 1000)
                await ops.click("nav button[data-view=silences]")
                await ops.select_option("#silence-site", "S02")
                await ops.fill("#silence-reason", "持证回填 licensed backfill")
                await ops.click("#silence-form button[type=submit]")
                await expect(ops.locator("#silences li")).to_contain_text("licensed backfill")
                await ops.click("#silences li button")
                await expect(ops.locator("#silences li")).to_have_count(0)
                await ops.click("nav button[data-view=map]")
                await expect(ops.locator("svg.map g.site")).to_have_count(len(cfg.sites.sites))
                await ops.screenshot(path=str(ARTIFACTS / "map-1440.png"), full_page=True)

                # A phone: the list becomes cards and nothing runs off the screen.
                phone = await signed_in_page(browser, base, "duty", 390, 844, is_mobile=True)
                await expect(phone.locator("#incidents tbody tr").first).to_be_visible()
                await expect(phone.locator("#incidents thead")).to_be_hidden()
                assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
                await phone.locator("#incidents tbody tr").first.click()
                await expect(phone.locator("#detail-title")).to_be_visible()
                assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
                await phone.screenshot(path=str(ARTIFACTS / "list-390.png"), full_page=True)
            finally:
                await browser.close()

    try:
        worker.wait_ready(topic_suffix="signals")
        asyncio.run(run())
    finally:
        worker.stop()
