"""A person signs in to the console through the OIDC simulator (a new account: registration
is open), links GitHub from the profile page, logs out and back in with GitHub, and a stranger
is refused once registration is closed, in Debian's Chromium with Playwright over
the whole stack. Requests may leave the gateway's origin only for the two providers, and the
page must raise no script error."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.oauth_support import Providers, providers
from tests.e2e.test_console import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

__all__ = ["providers"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
)


@pytest.fixture
async def options(pg: asyncpg.Pool, providers: Providers) -> AsyncIterator[None]:
    values = providers.options() | {"RegisterEnabled": "true"}
    # The QR image would be another origin (and is not this test's subject).
    values.pop("WeChatAccountQRCodeImageURL")
    await pg.executemany(
        "INSERT INTO options (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        list(values.items()),
    )
    yield
    await pg.execute("DELETE FROM options WHERE key = ANY($1::text[])", list(values))


async def test_sign_in_with_oidc_then_link_github(
    providers: Providers, options: None, pg: asyncpg.Pool
) -> None:
    subject = f"person-{secrets.token_hex(4)}"
    stranger = f"stranger-{secrets.token_hex(4)}"
    github_id = 5_000_000 + int(time.time()) % 10**6
    providers.oidc.server.config.app.state.person = {"sub": subject, "name": "Grace Console"}
    providers.github.server.config.app.state.person = {"id": github_id, "login": "grace"}
    allowed = (providers.url, providers.oidc.url, providers.github.url)
    strays: list[str] = []
    errors: list[str] = []
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page: Page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "request",
                lambda r: None if r.url.startswith(allowed) else strays.append(r.url),
            )
            await page.goto(providers.url + "/")
            await expect(page.get_by_test_id("oauth-oidc")).to_be_visible()
            await expect(page.get_by_test_id("oauth-github")).to_be_visible()
            await page.get_by_test_id("oauth-oidc").click()
            # Out to the provider and back to /oauth/oidc, which finishes the login.
            await expect(page.get_by_test_id("who")).to_have_text("Grace Console")
            assert page.url.endswith("/#/dashboard"), page.url
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "oauth-01-signed-in.png"))
            await page.goto(providers.url + "/#/profile")
            await expect(page.get_by_test_id("bindings")).to_be_visible()
            await expect(page.get_by_test_id("bound-oidc")).to_have_text(subject)
            await page.get_by_test_id("bind-github").click()
            await expect(page.get_by_test_id("bound-github")).to_have_text(str(github_id))
            assert page.url.endswith("/#/profile"), page.url
            await page.screenshot(path=str(ARTIFACTS / "oauth-02-linked.png"), full_page=True)
            # Logged out, GitHub now signs this person in to the same account.
            await page.get_by_role("button", name="Log out").click()
            await page.get_by_test_id("oauth-github").click()
            await expect(page.get_by_test_id("who")).to_have_text("Grace Console")
            # A stranger, with registration closed: refused on the login page, no account.
            await page.get_by_role("button", name="Log out").click()
            await pg.execute("UPDATE options SET value = 'false' WHERE key = 'RegisterEnabled'")
            providers.oidc.server.config.app.state.person = {"sub": stranger}
            await page.get_by_test_id("oauth-oidc").click()
            await expect(page.get_by_test_id("oauth-login").get_by_role("alert")).to_contain_text(
                "registration is turned off"
            )
            await page.screenshot(path=str(ARTIFACTS / "oauth-03-refused.png"))
        finally:
            await browser.close()
    row = await pg.fetchrow("SELECT id, github_id FROM users WHERE oidc_id = $1", subject)
    assert row is not None and row["github_id"] == str(github_id)
    assert await pg.fetchval("SELECT count(*) FROM users WHERE oidc_id = $1", stranger) == 0
    assert not errors, errors
    assert not strays, strays
