"""What the console API answers to a request it refuses, on the real server and store:
404 when what the request names does not exist, 409 when it conflicts with what is there,
400 when the request itself is wrong. Never a 500."""

from __future__ import annotations

import asyncio

import pytest

from tests.alerts.console.clients import browser_like, sign_in
from tests.helpers import serving

pytestmark = pytest.mark.broker


def test_refusals_say_what_is_wrong_with_the_right_status(console_setup):
    cfg, store = console_setup

    async def run():
        async with serving(cfg) as base, browser_like() as admin:
            csrf = {"X-CSRF-Token": (await sign_in(admin, base, "admin"))["csrf"]}

            async def status(path: str, body: dict | None = None) -> tuple[int, str]:
                async with admin.post(f"{base}{path}", json=body or {}, headers=csrf) as r:
                    return r.status, (await r.json())["error"] if r.status >= 400 else ""

            incident = store.incidents.ranked()[0]["id"]
            assert await status(f"/api/incidents/{incident}/fly") == (
                400, "unknown action 'fly'; one of acknowledge, dispatch, resolve")
            assert (await status(f"/api/incidents/{incident}/resolve"))[0] == 400  # no disposition
            assert (await status("/api/incidents/INC-NOPE/acknowledge"))[0] == 404
            assert await status(f"/api/incidents/{incident}/resolve", {"disposition": "false_alarm"}) == (200, "")
            assert (await status(f"/api/incidents/{incident}/acknowledge"))[0] == 409  # resolved already

            assert await status("/api/ledger/sites/S99", {"name": "x"}) == (404, "no site S99")
            assert await status("/api/ledger/sites/S99/status", {"status": "sealed", "reason": "x"}) == (
                404, "no site S99")
            assert (await status("/api/problems/9999/rectify", {"note": "x"}))[0] == 404
            assert await status("/api/tipoffs/abc/verify", {"note": "x"}) == (404, "no tip-off abc")
            assert (await status("/api/tipoffs/9999/verify", {"note": "x"}))[0] == 404

            async with admin.post(f"{base}/api/tipoffs", headers=csrf, json={
                    "text": "lights at the adit at night", "site_id": "S02"}) as r:
                assert r.status == 201, await r.text()
                tip = (await r.json())["id"]
            assert (await status(f"/api/tipoffs/{tip}/verify", {"note": "patrol saw it"}))[0] == 400  # not yet
            assert (await status(f"/api/tipoffs/{tip}/start_verifying"))[0] == 200
            assert (await status(f"/api/tipoffs/{tip}/verify", {"note": "patrol saw it"}))[0] == 200
            for amount in (99.9, True, "lots"):
                code, why = await status(f"/api/tipoffs/{tip}/propose", {"yuan": amount})
                assert code == 400 and ("whole number" in why or "could not convert" in why), (amount, why)
            assert await status(f"/api/tipoffs/{tip}/propose", {"yuan": "500"}) == (200, "")

            assert (await status("/api/users", {"username": "ops", "role": "ops"}))[0] == 409
            assert (await status("/api/users/nobody/disable"))[0] == 404
            assert await status("/api/users/OPS/disable") == (200, "")  # names are kept lower-case
            assert store.accounts.get("ops")["disabled_at"] is not None
            assert (await status("/api/silences/xyz/end"))[0] == 404

    asyncio.run(run())
