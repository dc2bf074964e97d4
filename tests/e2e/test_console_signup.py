"""A person signs up in the web console (Debian's Chromium, driven by Playwright) with the
code mailed to a real SMTP server, logs in, hands out the invitation link (a friend signs up
through it in a browser of their own: each is credited once), logs out, forgets the
password, resets it from the mailed link and logs in with the new one; the old one no
longer works. Every request the page
makes goes to the gateway, and the page raises no script error. Screenshots are kept in
``tests/artifacts/console-signup/``."""

from __future__ import annotations

import re
import secrets

import asyncpg
import pytest
from playwright.async_api import Browser, Page, Route, expect

from tests.e2e.test_accounts_mail import (
    SetOptions,
    code_in,
    link_in,
    new_ip,
    next_mail,
    unique,
)
from tests.e2e.test_accounts_mail import inbox as inbox
from tests.e2e.test_accounts_mail import options as options
from tests.e2e.test_console import ARTIFACTS, CHROMIUM, TIMEOUT_MS
from tests.e2e.test_console import browser as browser
from tests.smtp_inbox import Inbox
from unigate_cli.devstack import Stack

SHOTS = ARTIFACTS.parent / "console-signup"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
)


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _log_in(page: Page, username: str, password: str) -> None:
    form = page.get_by_test_id("login-form")
    await expect(form).to_be_visible()
    await form.locator('input[name="username"]').fill(username)
    await form.locator('input[name="password"]').fill(password)
    await form.locator('button[type="submit"]').click()


async def test_sign_up_by_mail_then_reset_the_password_by_the_mailed_link(
    stack: Stack, pg: asyncpg.Pool, browser: Browser, options: SetOptions, inbox: Inbox
) -> None:
    base = stack.gateway_url
    await options(
        {
            **inbox.options(),
            "RegisterEnabled": True,
            "EmailVerificationEnabled": True,
            "TurnstileCheckEnabled": False,
            "ServerAddress": base,
            "QuotaForNewUser": 0,
            "QuotaForInvitee": 2000,
            "QuotaForInviter": 3000,
        }
    )
    username = unique("browser")
    email = f"{username}@example.com"
    password = "first-" + secrets.token_urlsafe(10)

    # Each person's own client address (loopback is a trusted proxy), so the per-address mail
    # limits of this test meet no other test's.
    context = await browser.new_context(
        viewport={"width": 1280, "height": 860},
        locale="en-US",
        extra_http_headers={"X-Forwarded-For": new_ip()},
    )
    outside: list[str] = []

    async def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    try:
        # --- sign up with the mailed code --------------------------------------------------
        await page.goto(base + "/")
        await page.get_by_test_id("to-register").click()
        form = page.get_by_test_id("register-form")
        await expect(form).to_be_visible()
        await form.locator('input[name="username"]').fill(username)
        await form.locator('input[name="password"]').fill(password)
        await form.locator('input[name="password_again"]').fill(password)
        await form.locator('input[name="email"]').fill(email)
        await page.get_by_test_id("send-code").click()
        code = code_in(await next_mail(inbox, email, 0))
        await form.locator('input[name="verification_code"]').fill(code)
        await _shot(page, "01-register")
        await form.locator('button[type="submit"]').click()
        await expect(page.get_by_test_id("login-form")).to_be_visible()
        row = await pg.fetchrow("SELECT email FROM users WHERE username = $1", username)
        assert row is not None and row["email"] == email

        # --- log in, see the top-up page, log out ------------------------------------------
        await _log_in(page, username, password)
        await expect(page.get_by_test_id("who")).to_have_text(username)
        await page.click('nav a[data-nav="topup"]')
        await expect(page.get_by_test_id("aff-code")).to_have_text(re.compile(r"^[A-Z2-9]{8}$"))
        invite_link = (await page.get_by_test_id("aff-link").text_content() or "").strip()
        await _shot(page, "02-topup")

        # --- someone opens the invitation link and signs up: both are credited once --------
        # Another person: a browser of their own (no cookie of the inviter's).
        friend_context = await browser.new_context(
            locale="en-US", extra_http_headers={"X-Forwarded-For": new_ip()}
        )
        await friend_context.route("**/*", only_the_gateway)
        friend_page = await friend_context.new_page()
        friend_page.on("pageerror", lambda exc: script_errors.append(str(exc)))
        await friend_page.goto(invite_link)
        friend_form = friend_page.get_by_test_id("register-form")
        code_box = friend_form.locator('input[name="aff_code"]')
        await expect(code_box).to_have_value(invite_link.rsplit("=", 1)[1])
        friend = unique("friend")
        friend_email = f"{friend}@example.com"
        await friend_form.locator('input[name="username"]').fill(friend)
        await friend_form.locator('input[name="password"]').fill(password)
        await friend_form.locator('input[name="password_again"]').fill(password)
        await friend_form.locator('input[name="email"]').fill(friend_email)
        await friend_page.get_by_test_id("send-code").click()
        friend_code = code_in(await next_mail(inbox, friend_email, 0))
        await friend_form.locator('input[name="verification_code"]').fill(friend_code)
        await friend_form.locator('button[type="submit"]').click()
        await expect(friend_page.get_by_test_id("login-form")).to_be_visible()
        await friend_context.close()
        rewards = {
            r["username"]: r["quotas"]
            for r in await pg.fetch(
                "SELECT username, array_agg(quota ORDER BY id) AS quotas FROM logs"
                " WHERE type = 1 AND username = ANY($1::text[]) GROUP BY username",
                [username, friend],
            )
        }
        assert rewards == {username: [3000], friend: [2000]}
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_test_id("login-form")).to_be_visible()

        # --- forgot the password: the mailed link sets a new one ---------------------------
        await page.get_by_test_id("to-forgot").click()
        forgot = page.get_by_test_id("forgot-form")
        await forgot.locator('input[name="email"]').fill(email)
        await forgot.locator('button[type="submit"]').click()
        await expect(page.get_by_test_id("reset-mail-sent")).to_be_visible()
        await _shot(page, "03-reset-mail-sent")
        link = link_in(await next_mail(inbox, email, 1))
        assert link.startswith(base + "/#/reset?")
        await page.goto(link)
        reset = page.get_by_test_id("reset-form")
        await expect(reset).to_contain_text(email)
        await reset.locator('button[type="submit"]').click()
        shown = page.get_by_test_id("new-password")
        await expect(shown).to_be_visible()
        new_password = (await shown.text_content() or "").strip()
        assert len(new_password) >= 12 and new_password != password
        await _shot(page, "04-new-password")
        await page.get_by_test_id("reset-to-login").click()

        # --- the old password is refused, the new one logs in -------------------------------
        await _log_in(page, username, password)
        await expect(page.get_by_test_id("login-form").get_by_role("alert")).to_be_visible()
        await _log_in(page, username, new_password)
        await expect(page.get_by_test_id("who")).to_have_text(username)
        await _shot(page, "05-logged-in-again")
    finally:
        await context.close()
    assert outside == []
    assert script_errors == []
