"""The console's channel page (Debian's Chromium driven by Playwright) shows what channel
monitoring found: a multi-key channel whose bad key the relay took out of rotation shows
"2/3 keys", each key masked with its state, and an admin puts the key back; "Test all" puts
each channel's result in its row. In English and Chinese, at desktop and phone widths
(screenshots kept in ``tests/artifacts/console-health/``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import openai
import orjson
import pytest
from argon2 import PasswordHasher
from playwright.async_api import Browser, Page, async_playwright, expect
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS, leaves_no_channels  # noqa: F401
from unigate.crypto import decrypt_secret
from unigate.keys import key_fingerprint, mask_key
from unigate_cli.devstack import Stack

ARTIFACTS = (
    Path(os.environ.get("UNIGATE_TEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
    / "console-health"
)
TIMEOUT_MS = 30_000
PASSWORD = "health-" + secrets.token_hex(6)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _root(pg: asyncpg.Pool) -> str:
    username = "health-root-" + secrets.token_hex(3)
    await pg.execute(
        "INSERT INTO users (username, password_hash, must_change_password, display_name, role,"
        " status, quota) VALUES ($1, $2, FALSE, 'Health Root', 100, 1, 0)",
        username,
        PasswordHasher().hash(PASSWORD),
    )
    return username


async def _login(page: Page, base: str, username: str) -> None:
    await page.goto(base + "/")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page.get_by_test_id("who")).to_have_text("Health Root")


async def test_key_states_re_enable_and_test_all_results(
    stack: Stack,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
    tenant: Tenant,
    browser: Browser,
) -> None:
    base = stack.gateway_url
    second = "sk-second-" + secrets.token_hex(16)
    bad = "sk-revoked-" + secrets.token_hex(16)
    sim_app.state.api_keys.add(second)
    model = "health-" + secrets.token_hex(3)
    name = "three-keys-" + secrets.token_hex(3)
    channel_id = await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name=name,
        key="\n".join([SIM_KEY, bad, second]),
        base_url=simulator.url,
        models=model,
        model_mapping={model: "gpt-4o-mini"},
        priority=-100,
    )
    try:
        # Real traffic finds the bad key: the relay takes it out of rotation.
        client = openai.AsyncOpenAI(
            api_key=tenant.key, base_url=base + "/v1", max_retries=0, timeout=60
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(openai.APIStatusError):
                await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hello"}]
                )
            status = await pg.fetchval(
                "SELECT key_status::text FROM channels WHERE id = $1", channel_id
            )
            if key_fingerprint(bad) in orjson.loads(status):
                break
            assert time.monotonic() < deadline, "the bad key was never disabled"
            await asyncio.sleep(0.2)
        assert await pg.fetchval("SELECT status FROM channels WHERE id = $1", channel_id) == 1

        username = await _root(pg)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for lang in ("zh", "en"):
            context = await browser.new_context(
                viewport={"width": 1360, "height": 900}, locale="en-US"
            )
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            await _login(page, base, username)
            if lang == "zh":
                await page.get_by_test_id("lang-switch").click()
                await expect(page.locator('nav a[data-nav="channels"]')).to_have_text("渠道")
            await page.click('nav a[data-nav="channels"]')
            row = page.locator(f'tr[data-channel="{name}"]')
            await expect(row).to_be_visible()
            keys_button = row.get_by_test_id("channel-keys")
            await expect(keys_button).to_have_text("2/3 keys" if lang == "en" else "2/3 个密钥")
            await keys_button.click()
            table = page.get_by_test_id("key-table")
            await expect(table.locator("tr")).to_have_count(3)
            bad_row = table.locator(f'tr[data-key="{mask_key(bad)}"]')
            await expect(bad_row).to_have_attribute("data-status", "3")
            await expect(bad_row).to_contain_text("upstream_auth_failed")
            for good in (SIM_KEY, second):
                await expect(table.locator(f'tr[data-key="{mask_key(good)}"]')).to_have_attribute(
                    "data-status", "1"
                )
            content = await page.content()
            assert bad not in content and second not in content and SIM_KEY not in content
            await page.screenshot(path=str(ARTIFACTS / f"keys-{lang}.png"), full_page=True)
            await page.keyboard.press("Escape")  # closes the dialog
            await expect(page.locator(".modal")).to_have_count(0)

            # "Test all": every row gets its own result; ours passes on its two good keys.
            await page.get_by_role(
                "button", name="Test all" if lang == "en" else "测试全部"
            ).click()
            result = row.get_by_test_id("test-result")
            await expect(result).to_have_attribute("data-ok", "1", timeout=120_000)
            await page.screenshot(path=str(ARTIFACTS / f"test-all-{lang}.png"), full_page=True)

            if lang == "en":  # last: the admin puts the bad key back into rotation
                await keys_button.click()
                await bad_row.get_by_test_id("enable-key").click()
                await expect(bad_row).to_have_attribute("data-status", "1")
                assert (
                    await pg.fetchval(
                        "SELECT key_status::text FROM channels WHERE id = $1", channel_id
                    )
                    == "{}"
                )
                await page.keyboard.press("Escape")
                await expect(keys_button).to_have_text("3/3 keys")

            # A phone's width: the page still renders, and is kept for a look.
            await page.set_viewport_size({"width": 390, "height": 844})
            await expect(row).to_be_attached()
            # Tables scroll in their own box: the page itself never scrolls sideways.
            assert await page.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth"
            ), "the page is wider than a phone"
            await page.screenshot(path=str(ARTIFACTS / f"phone-{lang}.png"), full_page=True)
            assert errors == []
            await context.close()
    finally:
        sim_app.state.api_keys.discard(second)
        await pg.execute("UPDATE channels SET status = 2 WHERE id = $1", channel_id)
        await pg.execute("UPDATE abilities SET enabled = FALSE WHERE channel_id = $1", channel_id)


SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "unigate-test",
    "private_key_id": "k1",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "client_email": "relay@unigate-test.iam.gserviceaccount.com",
}


@pytest.mark.usefixtures("leaves_no_channels")
async def test_channel_form_defaults_hints_and_fill_models(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, browser: Browser
) -> None:
    base = stack.gateway_url
    username = await _root(pg)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        await _login(page, base, username)
        if lang == "zh":
            await page.get_by_test_id("lang-switch").click()
            await expect(page.locator('nav a[data-nav="channels"]')).to_have_text("渠道")
        await page.click('nav a[data-nav="channels"]')
        await page.get_by_test_id("add-channel").click()
        form = page.get_by_test_id("channel-form")
        kind = form.locator('select[name="type"]')
        base_url = form.locator('input[name="base_url"]')

        # The relay's defaults: no base URL demanded where it has one.
        for type_id, shown in (
            ("18", "wss://spark-api.xf-yun.com"),
            ("35", "https://api.cohere.com"),
            ("33", "https://bedrock-runtime.{region}.amazonaws.com"),
            ("42", "https://{region}-aiplatform.googleapis.com"),
        ):
            await kind.select_option(type_id)
            await expect(form).to_contain_text(shown)
            assert await base_url.get_attribute("required") is None, type_id
        await kind.select_option("3")  # Azure: the resource URL must be given
        assert await base_url.get_attribute("required") is not None

        # Bedrock: AK|SK, checked as one types it.
        await kind.select_option("33")
        await expect(form).to_contain_text("AccessKeyId | SecretAccessKey")
        key = form.locator('textarea[name="key"]')
        await key.fill("not-an-access-key")
        await expect(form.get_by_test_id("key-warning")).to_be_visible()
        await key.fill("AKIAIOSFODNN7EXAMPLE|wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        await expect(form.get_by_test_id("key-warning")).to_have_count(0)
        await expect(form).to_contain_text('{"region": "us-east-1", "model_ids"')

        # Fill models: the provider's own list (DeepSeek declares its two).
        await kind.select_option("36")
        await form.get_by_test_id("fill-models").click()
        models = form.locator('textarea[name="models"]')
        await expect(models).to_have_value("deepseek-chat,deepseek-reasoner")

        # Vertex: the service account's JSON file, pasted as is (several lines).
        await kind.select_option("42")
        partial = {k: v for k, v in SERVICE_ACCOUNT.items() if k != "private_key"}
        await key.fill(orjson.dumps(partial, option=orjson.OPT_INDENT_2).decode())
        await expect(form.get_by_test_id("key-warning")).to_contain_text("private_key")
        await key.fill(orjson.dumps(SERVICE_ACCOUNT, option=orjson.OPT_INDENT_2).decode())
        await expect(form.get_by_test_id("key-warning")).to_have_count(0)
        await models.fill("vertex-form-test-" + secrets.token_hex(3))
        await page.screenshot(path=str(ARTIFACTS / f"form-phone-{lang}.png"), full_page=True)
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        # Money on a chart axis: one precision for every tick (never "$0.00" next to
        # "$0.000200"), enough to tell neighbours apart.
        ticks = await page.evaluate(
            "import('/console/ui.js').then((m) => [m.fmtQuotaTicks([0, 50, 100, 150]),"
            " m.fmtQuotaTicks([0, 500000, 1000000])])"
        )
        assert ticks == [["$0.0000", "$0.0001", "$0.0002", "$0.0003"], ["$0.00", "$1.00", "$2.00"]]

        if lang == "en":  # saved: the multi-line JSON is one key, stored on one line
            name = "vertex-" + secrets.token_hex(3)
            await form.locator('input[name="name"]').fill(name)
            await form.locator('button[type="submit"]').click()
            await expect(page.locator(f'tr[data-channel="{name}"]')).to_be_visible()
            row = await pg.fetchrow("SELECT key_enc, base_url FROM channels WHERE name = $1", name)
            stored = decrypt_secret(row["key_enc"], secret_key)
            assert "\n" not in stored
            assert orjson.loads(stored) == SERVICE_ACCOUNT
            assert row["base_url"] == ""
        assert errors == []
        await context.close()
