"""The web console in a real browser (Debian's Chromium driven by Playwright) against the whole
stack: a root still on the default password is made to change it, adds a channel to the
OpenAI simulator, creates an API key and copies it, a chat call with the openai SDK uses that
key, and the call is then found in the logs page, its CSV export and the dashboard's figures;
redemption codes are minted, copied and redeemed; the language switches to Chinese and stays.

Every request the page makes must go to the gateway (the console works with no internet), and
the page must raise no script error. Screenshots of each page are kept in
``tests/artifacts/console/`` (or ``$UNIGATE_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from argon2 import PasswordHasher
from playwright.async_api import Browser, Locator, Page, Route, async_playwright, expect

from tests.e2e.conftest import SIM_KEY, ThreadedServer, broadcast_change
from tests.e2e.test_management_api import ROOT_PASSWORD, sim_channel
from unigate_cli.devstack import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = (
    Path(os.environ.get("UNIGATE_TEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
    / "console"
)
DEFAULT_PASSWORD = "123456"
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
)


async def _new_root(pg: asyncpg.Pool) -> str:
    """A root-role user still on the default password, as a fresh install's root is (the
    session's own root already has a test password; other tests log in with it)."""
    username = "console-root-" + secrets.token_hex(3)
    await pg.execute(
        "INSERT INTO users (username, password_hash, must_change_password, display_name, role,"
        " status, quota) VALUES ($1, $2, TRUE, 'Console Root', 100, 1, 50000000)",
        username,
        PasswordHasher().hash(DEFAULT_PASSWORD),
    )
    return username


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Shots:
    """Numbered full-page screenshots, kept as test artefacts."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.n = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()

    async def __call__(self, name: str) -> None:
        self.n += 1
        await self.page.screenshot(path=str(ARTIFACTS / f"{self.n:02d}-{name}.png"), full_page=True)


async def _wait_for_log_row(page: Page, request_id: str) -> Locator:
    """Filter the logs page by request id until billing has written the row."""
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    deadline = time.monotonic() + 30
    while True:
        await page.fill('[data-testid="log-filters"] input[name="request_id"]', request_id)
        await page.click('[data-testid="log-filters"] button[type="submit"]')
        try:
            await expect(row).to_be_visible(timeout=1500)
            return row
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture
async def leaves_no_channels(stack: Stack, pg: asyncpg.Pool) -> AsyncIterator[None]:
    """Channels the console adds serve the session's shared models: take them out of routing
    afterwards, so later tests' calls reach the channels those tests expect."""
    before = await pg.fetchval("SELECT coalesce(max(id), 0) FROM channels")
    yield
    made = [r["id"] for r in await pg.fetch("SELECT id FROM channels WHERE id > $1", before)]
    if made:
        await pg.execute("UPDATE channels SET status = 2 WHERE id = ANY($1::bigint[])", made)
        await pg.execute(
            "UPDATE abilities SET enabled = FALSE WHERE channel_id = ANY($1::bigint[])", made
        )
        await broadcast_change(stack, "channel", made)


@pytest.mark.usefixtures("leaves_no_channels")
async def test_console_flow(
    stack: Stack, pg: asyncpg.Pool, simulator: ThreadedServer, browser: Browser
) -> None:
    base = stack.gateway_url
    username = await _new_root(pg)
    new_password = "console-" + secrets.token_urlsafe(12)

    context = await browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    outside: list[str] = []

    async def only_the_gateway(route: Route) -> None:
        url = route.request.url
        if url.startswith(base + "/"):
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    shot = Shots(page)

    # --- login; the default password must be changed before anything else ------------------
    await page.goto(base + "/")
    await expect(page.get_by_test_id("login-form")).to_be_visible()
    await shot("login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', "wrong-password")
    await page.click('button[type="submit"]')
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.fill('input[name="password"]', DEFAULT_PASSWORD)
    await page.click('button[type="submit"]')
    form = page.get_by_test_id("change-password-form")
    await expect(form).to_be_visible()
    await expect(form.get_by_role("alert")).to_contain_text("default password")
    await shot("change-password")
    # No other page is reachable meanwhile, in the console or through the API.
    await page.goto(base + "/#/channels")
    await expect(form).to_be_visible()
    refused = await page.request.get(base + "/api/channel/")
    # One API's refusal: HTTP 200, success false.
    assert refused.status == 200 and (await refused.json())["success"] is False
    await page.fill('input[name="original_password"]', DEFAULT_PASSWORD)
    await page.fill('input[name="new_password"]', new_password)
    await page.fill('input[name="new_password_again"]', new_password)
    await page.click('button[type="submit"]')
    await expect(page.locator("nav.sidebar")).to_be_visible()
    await expect(page.get_by_test_id("who")).to_have_text("Console Root")
    # The old password no longer works; the new one does.
    other = await browser.new_context()
    r = await other.request.post(
        base + "/api/user/login", data={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert r.status >= 400 or not (await r.json())["success"]
    r = await other.request.post(
        base + "/api/user/login", data={"username": username, "password": new_password}
    )
    assert (await r.json())["success"] is True
    await other.close()

    # --- a channel to the OpenAI simulator ---------------------------------------------------
    channel_name = "sim-" + secrets.token_hex(3)
    await page.click('nav a[data-nav="channels"]')
    await page.get_by_test_id("add-channel").click()
    cform = page.get_by_test_id("channel-form")
    await expect(cform).to_be_visible()
    # The form knows each type's key format and default base URL.
    await cform.locator('select[name="type"]').select_option("3")
    await expect(cform).to_contain_text("a base URL is required")
    await cform.locator('select[name="type"]').select_option("1")
    await expect(cform).to_contain_text("https://api.openai.com")
    await expect(cform.locator('textarea[name="key"]')).to_have_attribute("placeholder", "sk-...")
    await cform.locator('textarea[name="key"]').fill("not-a-key")
    await expect(page.get_by_test_id("key-warning")).to_be_visible()
    await cform.locator('input[name="name"]').fill(channel_name)
    await cform.locator('textarea[name="key"]').fill(SIM_KEY)
    await expect(page.get_by_test_id("key-warning")).to_be_hidden()
    await cform.locator('input[name="base_url"]').fill(simulator.url)
    await cform.locator('textarea[name="models"]').fill("gpt-4o-mini")
    await shot("channel-form")
    await cform.locator('button[type="submit"]').click()
    await expect(cform).to_be_hidden()
    row = page.locator(f'tr[data-channel="{channel_name}"]')
    await expect(row).to_contain_text("Enabled")
    # Test it: the relay calls the simulator and the response time is recorded.
    await row.locator('[data-action="test"]').click()
    await expect(
        page.locator(".toast-success", has_text=f"{channel_name} answered in")
    ).to_be_visible()
    await expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d+ ms$"))
    # Disable and enable again.
    await row.locator('[data-action="disable"]').click()
    await expect(row).to_contain_text("Disabled")
    await row.locator('[data-action="enable"]').click()
    await expect(row).to_contain_text("Enabled")
    await shot("channels")

    # --- an API key, shown once, copied ------------------------------------------------------
    token_name = "console-key-" + secrets.token_hex(3)
    await page.click('nav a[data-nav="tokens"]')
    await page.get_by_test_id("add-token").click()
    tform = page.get_by_test_id("token-form")
    await tform.locator('input[name="name"]').fill(token_name)
    await tform.locator('input[name="rpm_limit"]').fill("100")
    await shot("token-form")
    await tform.locator('button[type="submit"]').click()
    shown = page.get_by_test_id("new-key")
    await expect(shown).to_have_text(re.compile(r"^sk-\S{20,}$"))
    await page.get_by_test_id("copy-key").click()
    await expect(page.locator(".toast-success", has_text="Copied").last).to_be_visible()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == await shown.inner_text()
    await shot("token-created")
    await page.keyboard.press("Escape")
    token_row = page.locator(f'tr[data-token="{token_name}"]')
    await expect(token_row).to_contain_text("RPM 100")
    # The list shows the key masked, never whole.
    assert copied not in await token_row.inner_text()
    await shot("tokens")

    # --- a chat call with that key -----------------------------------------------------------
    client = openai.AsyncOpenAI(api_key=copied, base_url=base + "/v1", max_retries=0, timeout=60)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from the console"}]
    )
    completion = raw.parse()
    assert completion.usage is not None
    request_id = raw.headers["x-request-id"]
    usage = completion.usage

    # --- the call in the logs page and its CSV export ----------------------------------------
    await page.click('nav a[data-nav="logs"]')
    log_row = await _wait_for_log_row(page, request_id)
    text = await log_row.inner_text()
    assert username in text and token_name in text and "gpt-4o-mini" in text
    assert str(usage.prompt_tokens) in text and str(usage.completion_tokens) in text
    # No prompt-cache reads or writes in this call: no cache line under its prompt tokens.
    assert await log_row.get_by_test_id("cache-tokens").count() == 0
    await shot("logs")
    href = await page.get_by_test_id("export-csv").get_attribute("href")
    assert href and "request_id=" + request_id in href
    # Fetched as the page would download it: same origin, the session cookie.
    status, body = await page.evaluate(
        "async (href) => { const r = await fetch(href); return [r.status, await r.text()]; }", href
    )
    assert status == 200, body
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r for r in rows if request_id in r.values()], rows[:3]

    # --- the dashboard's figures -------------------------------------------------------------
    await page.click('nav a[data-nav="dashboard"]')
    await page.get_by_test_id("dashboard-scope").select_option("self")
    # This user made exactly one call: its figures are exactly that call's.
    await expect(page.get_by_test_id("stat-requests")).to_have_text("1")
    await expect(page.get_by_test_id("stat-tokens")).to_have_text(f"{usage.total_tokens:,}")
    model_row = page.locator('[data-testid="model-table"] tr[data-model="gpt-4o-mini"]')
    await expect(model_row).to_contain_text(f"{usage.prompt_tokens:,}")
    await expect(page.get_by_test_id("bars-model-requests")).to_contain_text("gpt-4o-mini")
    await expect(page.locator('[data-testid="chart-requests"] canvas')).to_be_visible()
    await shot("dashboard-self")
    await page.get_by_test_id("dashboard-scope").select_option("all")
    # The five channels that used the most quota, as the ledger says (the session database
    # holds other tests' channels too); ours, just used, is among them only if it earned it.
    top = await pg.fetch("SELECT name FROM channels ORDER BY used_quota DESC, id DESC LIMIT 5")
    rows = page.get_by_test_id("top-channels").locator("tbody tr")
    await expect(rows).to_have_count(len(top))
    for i, record in enumerate(top):
        await expect(rows.nth(i)).to_contain_text(record["name"])
    await shot("dashboard-all")

    # --- redemption codes: a batch, copied, one redeemed -------------------------------------
    await page.click('nav a[data-nav="redemptions"]')
    await page.get_by_test_id("add-redemption").click()
    rform = page.get_by_test_id("redemption-form")
    await rform.locator('input[name="name"]').fill("console-batch")
    await rform.locator('input[name="quota"]').fill("1000000")
    await rform.locator('input[name="count"]').fill("3")
    await rform.locator('button[type="submit"]').click()
    await page.get_by_test_id("copy-codes").click()
    await expect(page.locator(".toast-success", has_text="Copied").last).to_be_visible()
    codes = (await page.evaluate("navigator.clipboard.readText()")).split("\n")
    assert len(codes) == 3 and len(set(codes)) == 3
    assert codes == (await page.get_by_test_id("new-codes").input_value()).split("\n")
    await shot("redemption-codes")
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("redemption-table")).to_contain_text(codes[0])
    await shot("redemptions")
    before = await pg.fetchval("SELECT quota FROM users WHERE username = $1", username)
    await page.click('nav a[data-nav="topup"]')
    await page.get_by_test_id("topup-form").locator('input[name="code"]').fill(codes[0])
    await page.get_by_test_id("topup-form").locator('button[type="submit"]').click()
    await expect(page.locator(".toast-success", has_text="Added $2.00")).to_be_visible()
    after = await pg.fetchval("SELECT quota FROM users WHERE username = $1", username)
    assert after == before + 1_000_000
    await shot("topup")
    await page.click('nav a[data-nav="profile"]')
    await expect(page.get_by_test_id("profile-balance")).to_be_visible()
    await shot("profile")

    # --- the remaining pages render ----------------------------------------------------------
    await page.click('nav a[data-nav="users"]')
    await expect(page.locator(f'tr[data-user="{username}"]')).to_be_visible()
    await shot("users")
    await page.click('nav a[data-nav="settings"]')
    await expect(page.locator('[data-option="ModelRatio"]')).to_be_visible()
    await shot("settings")

    # --- Chinese, kept across a reload -------------------------------------------------------
    await page.click('nav a[data-nav="dashboard"]')
    await page.get_by_test_id("lang-switch").click()
    await expect(page.locator('nav a[data-nav="channels"]')).to_have_text("渠道")
    await expect(page.locator('nav a[data-nav="logs"]')).to_have_text("日志")
    await page.reload()
    await expect(page.locator('nav a[data-nav="tokens"]')).to_have_text("令牌")
    await expect(page.locator("h1")).to_have_text("数据看板")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    await shot("dashboard-zh")
    await page.click('nav a[data-nav="channels"]')
    await expect(page.get_by_test_id("add-channel")).to_have_text("添加渠道")
    await shot("channels-zh")
    await page.get_by_test_id("lang-switch").click()
    await expect(page.locator('nav a[data-nav="channels"]')).to_have_text("Channels")

    # --- a second tab, opened after the login, can write too (CSRF token from /self) ---------
    tab = await context.new_page()
    tab.on("pageerror", lambda exc: script_errors.append(str(exc)))
    await tab.goto(base + "/#/tokens")
    tab_row = tab.locator(f'tr[data-token="{token_name}"]')
    await tab_row.locator('[data-action="disable"]').click()
    await expect(tab_row).to_contain_text("Disabled")
    assert (await pg.fetchval("SELECT status FROM tokens WHERE name = $1", token_name)) == 2
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "after disable"}]
        )

    await context.close()
    assert outside == [], f"the console reached beyond the gateway: {outside}"
    assert script_errors == []


async def test_console_settings_are_prefilled_and_logged_bodies_show(
    stack: Stack, simulator: ThreadedServer, browser: Browser
) -> None:
    """Issue 18: the price settings open on the built-in tables, the site options are there,
    and a request of a key with content logging on shows its bodies in the log view (another
    key's shows none)."""
    base = stack.gateway_url
    model = "console-content-" + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=base + "/api", timeout=60) as api:
        login = await api.post("/user/login", json={"username": "root", "password": ROOT_PASSWORD})
        csrf = {"X-CSRF-Token": login.json()["data"]["csrf_token"]}

        async def ok(method: str, path: str, **kw: Any) -> Any:
            r = await api.request(method, path, headers=csrf, **kw)
            assert r.status_code == 200 and r.json()["success"], r.text
            return r.json()["data"]

        channel = await sim_channel(ok, simulator, model)
        logged = await ok("POST", "/token/", json={"name": "c-logged", "unlimited_quota": True})
        quiet = await ok("POST", "/token/", json={"name": "c-quiet", "unlimited_quota": True})
        await ok("PUT", "/option/", json={"key": "ContentLogTokens", "value": str(logged["id"])})
        try:
            ids = {}
            for token, words in ((quiet, "quiet console words"), (logged, "logged console words")):
                client = openai.AsyncOpenAI(
                    api_key=token["key"], base_url=base + "/v1", max_retries=0, timeout=60
                )
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": words}]
                )
                ids[token["name"]] = raw.headers["x-request-id"]
            # Content logging is best effort and asynchronous: wait until billing has it.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = await ok(
                    "GET", "/log/", params={"request_id": ids["c-logged"], "content": "true"}
                )
                if rows and rows[0]["request_body"]:
                    break
                await asyncio.sleep(0.3)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)

            context = await browser.new_context(
                viewport={"width": 1360, "height": 900}, locale="en-US"
            )
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda exc: script_errors.append(str(exc)))
            await page.goto(base + "/")
            await page.fill('input[name="username"]', "root")
            await page.fill('input[name="password"]', ROOT_PASSWORD)
            await page.click('button[type="submit"]')
            await expect(page.locator("nav.sidebar")).to_be_visible()

            # Settings: the built-in prices pre-filled, the site's texts editable.
            await page.click('nav a[data-nav="settings"]')
            ratios = page.locator('[data-option="ModelRatio"] textarea')
            await expect(ratios).to_have_value(re.compile(r'"gpt-4o": 1\.25'))
            await expect(page.locator('[data-option="CompletionRatio"] textarea')).to_have_value(
                re.compile(r'"gpt-4o": 4')
            )
            notice = "Console notice " + secrets.token_hex(3)
            await page.fill('[data-option="Notice"] textarea', notice)
            await page.locator('[data-option="Notice"] button[type="submit"]').click()
            await expect(page.locator(".toast-success", has_text="Notice")).to_be_visible()
            assert (await api.get("/notice")).json()["data"] == notice
            await page.screenshot(path=str(ARTIFACTS / "settings-prefilled.png"), full_page=True)

            # Logs: the logged key's bodies on demand, none for the other key.
            await page.click('nav a[data-nav="logs"]')
            row = await _wait_for_log_row(page, ids["c-logged"])
            await row.get_by_test_id("show-bodies").click()
            bodies = row.get_by_test_id("log-bodies")
            await expect(bodies).to_contain_text("logged console words")
            assert logged["key"] not in await bodies.inner_text()
            await page.screenshot(path=str(ARTIFACTS / "log-bodies.png"), full_page=True)
            quiet_row = await _wait_for_log_row(page, ids["c-quiet"])
            await quiet_row.get_by_test_id("show-bodies").click()
            await expect(quiet_row.get_by_test_id("no-bodies")).to_be_visible()
            await context.close()
            assert script_errors == []
        finally:
            await ok("PUT", "/option/", json={"key": "ContentLogTokens", "value": ""})
            await ok("PUT", "/option/", json={"key": "Notice", "value": ""})
            await ok("DELETE", f"/channel/{channel['id']}")


async def test_console_log_pages_by_cursor(
    stack: Stack, pg: asyncpg.Pool, browser: Browser
) -> None:
    """Issue 21: the logs page pages by cursor (first, next, last, previous) over a user's 45
    rows, 20 a page: each page is its rows newest first, the label says where it is, and the
    buttons at either end are disabled."""
    username = "console-pages-" + secrets.token_hex(3)
    password = "pw-" + secrets.token_hex(8)
    user_id = await pg.fetchval(
        "INSERT INTO users (username, password_hash, role, status) VALUES ($1, $2, 1, 1)"
        " RETURNING id",
        username,
        PasswordHasher().hash(password),
    )
    now = int(time.time())
    rids = [f"pages-{secrets.token_hex(4)}-{i:02d}" for i in range(45)]  # newest first
    await pg.executemany(
        "INSERT INTO logs (request_id, type, created_at, user_id, model_name, quota)"
        " VALUES ($1, 2, $2, $3, 'pages-model', 1)",
        [(rid, now - 30 * i, user_id) for i, rid in enumerate(rids)],
    )
    try:
        context = await browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        script_errors: list[str] = []
        page.on("pageerror", lambda exc: script_errors.append(str(exc)))
        await page.goto(stack.gateway_url + "/")
        await page.fill('input[name="username"]', username)
        await page.fill('input[name="password"]', password)
        await page.click('button[type="submit"]')
        await page.click('nav a[data-nav="logs"]')
        table = page.get_by_test_id("log-table")
        label = page.get_by_test_id("pager-label")

        async def shows(first: int, last: int, where: str) -> None:
            await expect(label).to_have_text(f"{where} · total 45")
            await expect(table.locator("tbody tr").first).to_have_attribute(
                "data-request-id", rids[first]
            )
            await expect(table.locator("tbody tr")).to_have_count(last - first + 1)
            await expect(table.locator("tbody tr").last).to_have_attribute(
                "data-request-id", rids[last]
            )

        await shows(0, 19, "Page 1 / 3")
        await expect(page.get_by_test_id("pager-first")).to_be_disabled()
        await expect(page.get_by_test_id("pager-prev")).to_be_disabled()
        await page.get_by_test_id("pager-next").click()
        await shows(20, 39, "Page 2 / 3")
        await page.get_by_test_id("pager-last").click()
        # The last page is the oldest 20 rows: whole, read from the oldest end.
        await shows(25, 44, "Page 3 / 3")
        await expect(page.get_by_test_id("pager-next")).to_be_disabled()
        await expect(page.get_by_test_id("pager-last")).to_be_disabled()
        await page.get_by_test_id("pager-prev").click()
        await shows(5, 24, "Page 2 / 3")
        await page.get_by_test_id("pager-first").click()
        await shows(0, 19, "Page 1 / 3")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "log-pages.png"), full_page=True)
        await context.close()
        assert script_errors == []
    finally:
        # Rows of the test's own, without the rollups the ledger writes beside a row: gone
        # again before the session's audit compares the two.
        await pg.execute("DELETE FROM logs WHERE user_id = $1", user_id)
