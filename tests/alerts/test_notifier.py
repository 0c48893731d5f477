"""Notifications against a real local HTTP server: retries, one delivery, no repeats."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import REGISTRY

from alerts.fusion import FusionRules
from alerts.notifier import Channel, Notifier
from alerts.store import AlertStore
from detectors.timeofday import LocalClock
from tests.helpers import free_port

NIGHT = LocalClock().epoch(2026, 11, 23, 2)


async def run_scenario(tmp_path, fail_first: int, status_after: int = 200):
    received = []

    async def hook(request):
        received.append((request.headers.get("Idempotency-Key"), request.headers.get("Authorization"),
                         await request.json()))
        if len(received) <= fail_first:
            return web.Response(status=503, text="busy")
        return web.json_response({"ok": True}, status=status_after)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/sms", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    incident, _ = store.incidents.apply_signal({"signal_id": "a", "site_id": "S01", "source_kind": "power", "source_id": "M",
                                      "kind": "reconnection", "ts": NIGHT, "strength": 0.95, "summary": "s"},
                                     FusionRules(), LocalClock())

    async def call(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    notifier = Notifier([Channel("webhook", f"http://127.0.0.1:{port}/hook", token="t0k")], call, store.notifications,
                        "http://console", max_attempts=4, backoff_s=0.05)
    try:
        first = await notifier.notify(incident, "opened")
        second = await notifier.notify(incident, "opened")
    finally:
        await runner.cleanup()
    return received, first, second, store.notifications.of_incident(incident["id"]), incident


def test_retries_until_delivered_then_never_again(tmp_path):
    received, first, second, log, incident = asyncio.run(run_scenario(tmp_path, fail_first=2))
    assert first == {"webhook": "sent"} and second == {"webhook": "skipped"}
    assert len(received) == 3  # two 503s, then delivered; the repeat call sent nothing
    assert {r[0] for r in received} == {f"{incident['id']}:opened:webhook"}  # same key on every retry
    assert received[0][1] == "Bearer t0k"
    assert received[0][2]["text"].startswith("[ShaftWatch] CRITICAL new: S01")
    assert [(n["status"], n["attempts"]) for n in log] == [("sent", 3)]


def failed_count() -> float:
    return REGISTRY.get_sample_value("shaftwatch_notifications_total", {"channel": "webhook", "result": "failed"}) or 0


def test_gives_up_and_records_the_failure(tmp_path):
    before = failed_count()
    received, first, second, log, _ = asyncio.run(run_scenario(tmp_path, fail_first=100))
    assert first == {"webhook": "failed"} and len(received) == 8  # 4 attempts, then 4 more on the next call
    assert log[0]["status"] == "failed" and "HTTP 503" in log[0]["response"]
    assert failed_count() - before == 2  # counted for ops' NotifierFailing alert, once per call


def test_client_errors_are_not_retried(tmp_path):
    received, first, _, _, _ = asyncio.run(run_scenario(tmp_path, fail_first=0, status_after=400))
    assert first == {"webhook": "failed"} and len(received) == 2  # one per call
