"""How the console's tests reach it: accounts of each role, a machine client's token, an
HTTP client that keeps the session cookie, and Debian's chromium."""

from __future__ import annotations

from pathlib import Path

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORDS = {"duty": "duty password 1", "ops": "ops password 22", "admin": "admin password 333"}
MACHINE_TOKEN = "hotline-token-123"


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies of 127.0.0.1 (aiohttp's jar refuses IP hosts by default)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(session: aiohttp.ClientSession, base: str, user: str) -> dict:
    async with session.post(f"{base}/api/login", json={"username": user, "password": PASSWORDS[user]}) as r:
        assert r.status == 200, await r.text()
        return {**await r.json(), "set_cookie": r.headers["Set-Cookie"]}
