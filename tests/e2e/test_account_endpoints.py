"""What a key may learn about itself: /v1/models/{id} and One API's billing endpoints."""

from __future__ import annotations

import asyncpg
import httpx
import openai
import pytest

from tests import admin_writes
from tests.e2e.conftest import Tenant
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate.pricing import QUOTA_PER_USD
from unigate_cli.devstack import Stack


async def test_retrieve_model_only_for_models_the_key_may_use(
    client: openai.AsyncOpenAI, stack: Stack, pg: asyncpg.Pool, channel_id: int
) -> None:
    assert (await client.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")
    limited = await admin_writes.create_token(
        pg, user_id=1, name="m", unlimited_quota=True, models="gpt-4o"
    )
    narrow = openai.AsyncOpenAI(
        api_key=limited.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    assert [m.id async for m in narrow.models.list()] == ["gpt-4o"]
    with pytest.raises(openai.NotFoundError):
        await narrow.models.retrieve("gpt-4o-mini")


async def test_billing_subscription_and_usage_as_one_api_reports_them(
    stack: Stack, pg: asyncpg.Pool, channel_id: int
) -> None:
    token = await admin_writes.create_token(pg, user_id=1, name="b", remain_quota=QUOTA_PER_USD * 2)
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "spend a little"}]
    )
    await wait_for_rows(pg, token.id, 1)
    used = await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token.id)
    assert used > 0
    headers = {"Authorization": f"Bearer {token.key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        sub = (await http.get("/dashboard/billing/subscription", headers=headers)).json()
        usage = (await http.get("/v1/dashboard/billing/usage", headers=headers)).json()
        anonymous = await http.get("/dashboard/billing/usage")
    assert sub["object"] == "billing_subscription"
    assert sub["hard_limit_usd"] == pytest.approx(2.0)  # left plus spent: the allowance
    assert sub["access_until"] == 0
    assert usage["total_usage"] == pytest.approx(used / QUOTA_PER_USD * 100)
    assert anonymous.status_code == 401


async def test_unlimited_key_reports_one_apis_big_number(stack: Stack, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        sub = await http.get(
            "/v1/dashboard/billing/subscription", headers={"Authorization": f"Bearer {tenant.key}"}
        )
    assert sub.json()["hard_limit_usd"] == 100_000_000
