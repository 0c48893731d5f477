"""How the console's tests reach it: accounts of each role, a machine client's token, an
HTTP client that keeps the session cookie, and Debian's chromium with a signed-in page."""

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


async def signed_in_page(browser, base: str, user: str, width: int = 1440, height: int = 900,
                         is_mobile: bool = False):
    """A fresh browser context at ``width`` px, signed in as ``user`` through the page's own form."""
    from playwright.async_api import expect
    context = await browser.new_context(viewport={"width": width, "height": height}, is_mobile=is_mobile,
                                        accept_downloads=True)
    page = await context.new_page()
    await page.goto(base)
    await page.fill("#username", user)
    await page.fill("#password", PASSWORDS[user])
    await page.click("#sign-in button")
    await expect(page.locator("#who")).to_be_visible()
    return page
