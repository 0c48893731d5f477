"""The county's workflow in the console: evidence from outside through the API, then the
pages in a real browser (Debian's chromium) against the real server, store and broker —
a patrol member records a visit with a photo at phone width and its problem is rectified
and closed out; a tip-off is taken, verified and rewarded by three people, its reporter's
contact shown to ops only; the ledger CSV and the weekly XLSX are downloaded and read."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from openpyxl import load_workbook

from alerts.evidence import EvidenceStore
from alerts.reports import week_of
from streams.contract.decoding import decode
from streams.contract.records import Signal
from tests.alerts.console.clients import CHROMIUM, CHROMIUM_ARGS, MACHINE_TOKEN, browser_like, signed_in_page
from tests.helpers import REPO, read_all, serving

ARTIFACTS = REPO / "test-artifacts" / "console"


def jpeg(shade: int = 120) -> bytes:
    return cv2.imencode(".jpg", np.full((90, 120, 3), shade, np.uint8))[1].tobytes()


def external_signals(cfg, bootstrap: str) -> list[Signal]:
    records = asyncio.run(read_all(bootstrap, cfg.topic("signals"), 1000, timeout=5))
    return [s for s in (decode(Signal, r.value) for r in records) if s.source_kind == "external"]


@pytest.mark.broker
def test_evidence_from_outside_reaches_fusion_as_its_own_source(console_setup, kafka_bootstrap):
    cfg, store = console_setup
    bearer = {"Authorization": f"Bearer {MACHINE_TOKEN}"}

    async def run():
        async with serving(cfg) as base, browser_like() as client:
            url = f"{base}/api/evidence/external"
            photo = base64.b64encode(jpeg()).decode()
            async with client.post(url, headers=bearer, json={
                    "site_id": "S02", "source": "无人机队 drone team", "kind": "drone_sighting",
                    "note": "two trucks at the adit", "strength": 0.8, "image_b64": photo}) as r:
                assert r.status == 202, await r.text()
                by_site = await r.json()
            site = cfg.site("S05")
            async with client.post(url, headers=bearer, json={"lon": site.lon + 0.001, "lat": site.lat,
                                                                "note": "smoke from the shaft"}) as r:
                assert r.status == 202 and (await r.json())["site_id"] == "S05"  # the nearest site
            for bad, why in (({"lon": 100.0, "lat": 20.0, "note": "x"}, "no site within"),
                             ({"site_id": "S02", "note": "x", "strength": 3}, "strength"),
                             ({"site_id": "S02", "note": "x", "image_b64": base64.b64encode(b"GIF89a").decode()},
                              "JPEG or a PNG"),
                             ({"site_id": "S02"}, "note")):
                async with client.post(url, headers=bearer, json=bad) as r:
                    assert r.status == 400 and why in (await r.json())["error"]
            async with client.post(url, json={"site_id": "S02", "note": "x"}) as r:
                assert r.status == 401
            return by_site

    by_site = asyncio.run(run())
    signals = {s.signal_id: s for s in external_signals(cfg, kafka_bootstrap)}
    drone = signals[by_site["signal_id"]]
    assert (drone.site_id, drone.kind, drone.strength, drone.source_id) == ("S02", "drone_sighting", 0.8,
                                                                           "无人机队 drone team")
    assert EvidenceStore(cfg.evidence_dir).path_of(drone.evidence[0]).read_bytes() == jpeg()
    assert len(signals) == 2


@pytest.mark.broker
def test_visits_tipoffs_and_reports_in_a_real_browser(console_setup, kafka_bootstrap, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed here (make chromium installs it)")
    playwright = pytest.importorskip("playwright.async_api")
    cfg, store = console_setup
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = tmp_path / "lock.jpg"
    photo.write_bytes(jpeg(200))

    async def run():
        expect = playwright.expect
        async with serving(cfg) as base, playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

            def signed_in(user: str, width: int = 1440):
                return signed_in_page(browser, base, user, width)

            try:
                # A patrol member at a shaft, on a phone: a visit with a photo that found a problem.
                phone = await signed_in("duty", 390)
                await phone.click("nav button[data-view=patrol]")
                await phone.select_option("#visit-site", "S02")
                await phone.fill("#visit-finding", "封口锁被撬开 the lock was cut")
                await phone.check("#visit-problem")
                await phone.set_input_files("#visit-photos", str(photo))
                await phone.click("#visit-form button[type=submit]")
                await expect(phone.locator("#visit-result")).to_contain_text("已记录巡查")
                await expect(phone.locator("#problems li")).to_contain_text("the lock was cut")
                assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
                await phone.screenshot(path=str(ARTIFACTS / "visit-390.png"), full_page=True)
                await phone.fill("#problems li input", "换新锁并焊死 new lock, entrance welded")
                await phone.click("#problems li button")
                await expect(phone.locator("#problems li")).to_have_count(1)
                await expect(phone.locator("#problems li button")).to_have_count(0)  # closing out is for ops
                ops = await signed_in("ops")
                await ops.click("nav button[data-view=patrol]")
                await ops.fill("#problems li input", "现场复核 checked on site")
                # A live change re-renders the list while ops is typing: the note stays.
                await ops.evaluate("loadPatrol()")
                await expect(ops.locator("#problems li input")).to_have_value("现场复核 checked on site")
                await ops.click("#problems li button")
                await expect(ops.locator("#problems li")).to_have_count(0)

                # A tip-off taken by the duty officer, verified, rewarded by ops and an admin.
                duty = await signed_in("duty")
                await duty.click("nav button[data-view=tipoffs]")
                await duty.fill("#tipoff-text", "夜里老鸦沟有车灯 lights at the old shaft at night")
                await duty.select_option("#tipoff-site", "S01")
                await duty.fill("#tipoff-contact", "13900001111")
                await duty.click("#tipoff-form button[type=submit]")
                tip = duty.locator("#tipoffs li").first
                await expect(tip).to_contain_text("已受理")
                await expect(tip).to_contain_text("仅运维可见")  # a patrol member does not see the contact
                assert "13900001111" not in await tip.inner_text()
                await tip.locator("button[data-step=start_verifying]").click()
                await expect(tip).to_contain_text("核查中")
                await tip.locator("input").fill("发现发电机 a generator found")
                await tip.locator("button[data-step=verify]").click()
                # The state shown, not the button that says it ("核实属实"): the list came back.
                await expect(tip.locator("button[data-step=verify]")).to_have_count(0)
                await expect(tip).to_contain_text("· 属实 ·")
                await ops.click("nav button[data-view=tipoffs]")
                tip = ops.locator("#tipoffs li").first
                await expect(tip).to_contain_text("13900001111")  # ops may call the reporter back
                await tip.locator("input").fill("2000")
                await tip.locator("button[data-step=propose]").click()
                await expect(tip).to_contain_text("拟奖励")
                admin = await signed_in("admin")
                await admin.click("nav button[data-view=tipoffs]")
                await admin.locator("#tipoffs li button[data-step=approve]").click()
                await expect(admin.locator("#tipoffs li").first).to_contain_text("已批准")
                await ops.reload()
                await ops.click("nav button[data-view=tipoffs]")
                await ops.locator("#tipoffs li button[data-step=pay]").click()
                await expect(ops.locator("#tipoffs li").first).to_contain_text("已发放 2000")

                # The ledger as CSV, and the week's ledger list as a workbook.
                await ops.click("nav button[data-view=ledger]")
                await expect(ops.locator("#ledger tbody tr")).to_have_count(len(cfg.sites.sites))
                async with ops.expect_download() as download:
                    await ops.click("#ledger-export")
                csv_text = Path(await (await download.value).path()).read_text(encoding="utf-8-sig")
                await ops.click("nav button[data-view=reports]")
                await ops.fill("#report-week", week_of(time.time(), cfg.thresholds.clock()))
                await ops.dispatch_event("#report-week", "change")
                async with ops.expect_download() as download:
                    await ops.click("#report-xlsx")
                workbook = Path(await (await download.value).path()).read_bytes()
                return csv_text, workbook
            finally:
                await browser.close()

    csv_text, workbook = asyncio.run(run())
    lines = csv_text.splitlines()
    assert lines[0] == "id,name,township,lon,lat,status,sealed_on,responsible,unit"
    assert len(lines) == 1 + len(cfg.sites.sites) and lines[1].startswith("S01,金山镇 老鸦沟 1号硐,金山镇,")
    book = load_workbook(io.BytesIO(workbook))
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(min_row=2, values_only=True)}
    assert (summary["patrol visits"], summary["tip-offs verified"], summary["rewards paid (yuan)"]) == (1, 1, 2000)
    # The visit's problem and the verified tip-off went to fusion as evidence of their own kind.
    kinds = sorted((s.kind, s.site_id) for s in external_signals(cfg, kafka_bootstrap))
    assert kinds == [("patrol_finding", "S02"), ("tipoff_verified", "S01")]
    [visit] = store.patrols.visits()
    assert EvidenceStore(cfg.evidence_dir).path_of(visit["photos"][0]).read_bytes() == photo.read_bytes()
    [problem] = store.patrols.problems()
    assert (problem["state"], problem["rectified_by"], problem["closed_by"]) == ("closed", "duty", "ops")
    [tip] = store.tipoffs.all()
    assert tip["contact_sealed"] and "13900001111" not in tip["contact_sealed"]
