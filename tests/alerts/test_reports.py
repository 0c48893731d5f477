"""The weekly ledger list (台账清单): its workbook is opened and its sheets and totals are
checked against the store; it is delivered once per destination to a real local webhook
and a real local mail relay (aiosmtpd), and a failed destination is tried again."""

from __future__ import annotations

import asyncio
import email
import io
import threading
import time

import pytest
from aiohttp import web
from openpyxl import load_workbook

from alerts.fusion import FusionRules
from alerts.reports import send_weekly, to_csv, to_xlsx, week_bounds, week_of, weekly_report
from alerts.store import AlertStore
from detectors.timeofday import LocalClock
from streams.config.runtime import MailRelay
from tests.helpers import free_port

CLOCK = LocalClock()
SITES = [{"id": s, "name": f"site {s}", "township": t, "lon": 110.0 + i / 100, "lat": 34.0, "status": "sealed",
          "sealed_on": None, "responsible": "x", "unit": ""}
         for i, (s, t) in enumerate([("S01", "金山镇"), ("S02", "金山镇"), ("S03", "河口乡")])]


@pytest.fixture
def store(tmp_path):
    s = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    s.migrate()
    s.ledger.sync(SITES)
    now = time.time()
    night = CLOCK.last(2.0, now)
    for sid, site, strength in (("a", "S01", 0.95), ("b", "S03", 0.3)):
        s.incidents.apply_signal({"signal_id": sid, "site_id": site, "source_kind": "power", "source_id": "M",
                                  "kind": "reconnection", "ts": night, "strength": strength, "summary": "s"},
                                 FusionRules(), CLOCK)
    confirmed = next(i for i in s.incidents.ranked() if i["site_id"] == "S01")
    s.incidents.transition(confirmed["id"], "resolve", "patrol-lead", "illegal_mining_confirmed", "3 caught")
    s.patrols.record_visit("S01", "wang", now, "all quiet", [])
    visit = s.patrols.record_visit("S02", "wang", now, "lock cut", [], problem=True)
    s.patrols.advance_problem(visit["problem_id"], "rectify", "wang", "new lock")
    s.patrols.advance_problem(visit["problem_id"], "close", "ops", "checked")
    s.ledger.change_status("S03", "breached", "ops", "seal broken")
    tip = s.tipoffs.receive(channel="hotline", received_by="hotline", text="lights at night", site_id="S02")
    s.tipoffs.verification(tip["id"], "start_verifying", "wang")
    s.tipoffs.verification(tip["id"], "verify", "wang", "generator found")
    s.tipoffs.reward(tip["id"], "propose", "ops", 2000)
    s.tipoffs.reward(tip["id"], "approve", "admin")
    s.tipoffs.reward(tip["id"], "pay", "ops")
    s.tipoffs.receive(channel="console", received_by="duty", text="maybe", site_id="S03")
    return s


def test_the_workbook_holds_the_weeks_facts_and_its_totals_match_the_store(store):
    week = week_of(time.time(), CLOCK)
    start, end = week_bounds(week, CLOCK)
    assert end - start == 7 * 86400 and CLOCK.local(start).tm_wday == 0 and CLOCK.local(start).tm_hour == 0
    book = load_workbook(io.BytesIO(to_xlsx(weekly_report(store, week, CLOCK, "青岭县", {"default": 3}))))
    assert book.sheetnames == ["summary", "incidents", "coverage", "ledger", "tip-offs"]
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["week"] == week and summary["incidents"] == 2
    assert summary["incidents confirmed as illegal mining"] == 1
    assert summary["patrol visits"] == 2 == len(store.patrols.visits())
    assert summary["sites overdue"] == 3  # one visit each at most, three required
    assert summary["tip-offs"] == 2 and summary["tip-offs verified"] == 1 and summary["rewards paid (yuan)"] == 2000
    incidents = list(book["incidents"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[7]) for r in incidents] == [("河口乡", "S03", None),  # an empty cell reads None
                                                       ("金山镇", "S01", "illegal_mining_confirmed")]
    ledger = [r[2] for r in book["ledger"].iter_rows(min_row=2, values_only=True)]
    assert ledger.count("status_changed") == 1 and "closed out (销号)" in ledger and "problem found" in ledger
    text = to_csv(weekly_report(store, week, CLOCK, "青岭县", {"default": 3}))
    assert text.startswith("\ufeffsection,item,value")
    assert "\r\nincidents,金山镇,S01," in text and ",hotline,S02,verified,wang,paid,2000,admin\r\n" in text
    with pytest.raises(ValueError, match="ISO week"):
        week_bounds("2026-49", CLOCK)


def test_the_report_is_delivered_once_to_a_webhook_and_a_mail_relay(store):
    from aiosmtpd.controller import Controller

    received: list[tuple[str, bytes]] = []
    mails: list[bytes] = []

    class Relay:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            mails.append(envelope.content)
            return "250 OK"

    smtp = Controller(Relay(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook_port, ready, fail_first = free_port(), threading.Event(), [True]

    def serve_webhook():
        async def hook(request: web.Request) -> web.Response:
            if fail_first.pop() if fail_first else False:
                return web.Response(status=503)
            received.append((request.headers.get("Authorization", ""), await request.read()))
            return web.Response(text="ok")

        async def main():
            app = web.Application()
            app.router.add_post("/ledger", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", hook_port).start()
            ready.set()
            while len(received) < 1 or not stop.is_set():
                await asyncio.sleep(0.05)
            await runner.cleanup()
        asyncio.run(main())

    stop = threading.Event()
    thread = threading.Thread(target=serve_webhook, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        week = week_of(time.time(), CLOCK)
        url = f"http://127.0.0.1:{hook_port}/ledger"
        relay = MailRelay(host="127.0.0.1", port=smtp.port, sender="shaftwatch@county.lan",
                          recipients=["office@county.lan"])
        first = send_weekly(store, week, CLOCK, "青岭县", {"default": 3}, url, "hook-token", relay)
        assert first == {url: "failed", "mail:office@county.lan": "sent"}
        again = send_weekly(store, week, CLOCK, "青岭县", {"default": 3}, url, "hook-token", relay)
        assert again == {url: "sent", "mail:office@county.lan": "skipped"}  # the failed one, once more
        assert send_weekly(store, week, CLOCK, "青岭县", {"default": 3}, url, "hook-token", relay) == {
            url: "skipped", "mail:office@county.lan": "skipped"}
        [(authorization, body)] = received
        assert authorization == "Bearer hook-token" and f'filename="ledger-{week}.xlsx"'.encode() in body
        [mail] = mails
        message = email.message_from_bytes(mail)
        names = [part.get_filename() for part in message.walk() if part.get_filename()]
        assert names == [f"ledger-{week}.xlsx", f"ledger-{week}.csv"] and message["To"] == "office@county.lan"
    finally:
        stop.set()
        smtp.stop()
        thread.join(10)
