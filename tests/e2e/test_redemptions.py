"""Redemption codes: minted by an admin, redeemed exactly once however many try at the same
moment, and the top-up is usable by the very next request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import asyncpg
import openai
import pytest

from tests import admin_writes
from tests.e2e.test_parallel_billing import MODEL, LedgerEnv, ledger_env, run_cli
from unigate.quota import QuotaStore
from unigate_billing.redemptions import (
    RedemptionDisabled,
    RedemptionError,
    RedemptionUsed,
    UnknownRedemption,
    UnknownUser,
    create_redemptions,
    redeem,
)

TOP_UP = 2_000_000  # 4 USD: far more than one small request reserves


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LedgerEnv]:
    async with ledger_env(tmp_path_factory.mktemp("redemptions")) as e:
        yield e


@pytest.fixture
def quota(env: LedgerEnv) -> QuotaStore:
    return QuotaStore(env.redis, env.ns)


_users = iter(range(1, 10**6))


async def new_user(env: LedgerEnv) -> tuple[int, str]:
    """A user with no quota at all, and an API key of theirs whose own quota is unlimited (so
    the user's balance is what limits it)."""
    name = f"redeemer{next(_users)}"
    user_id = await admin_writes.create_user(env.pg, username=name, password="a-long-password")
    token = await admin_writes.create_token(env.pg, user_id=user_id, name="k", unlimited_quota=True)
    return user_id, token.key


async def top_ups(pg: asyncpg.Pool, user_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pg.fetch(
        "SELECT quota, content FROM logs WHERE type = 1 AND user_id = $1", user_id
    )
    return rows


async def ask(env: LedgerEnv, key: str) -> str | None:
    async with openai.AsyncOpenAI(
        api_key=key, base_url=env.base_url, max_retries=0, timeout=60
    ) as client:
        resp = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "worth paying for"}]
        )
    return resp.choices[0].message.content


async def test_a_code_raced_by_twenty_redeems_is_credited_once_and_usable_at_once(
    env: LedgerEnv, quota: QuotaStore
) -> None:
    user_id, key = await new_user(env)
    # Broke: refused, and the empty balance is now cached in Redis.
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await ask(env, key)
    assert refused.value.response.json()["error"]["code"] == "insufficient_quota"

    [code] = await create_redemptions(env.pg, "race", TOP_UP, 1, created_by=1)
    # Twenty at once, each on its own connection, so that they really meet in Postgres.
    pool = await asyncpg.create_pool(env.dsn, min_size=20, max_size=20)
    assert pool is not None
    try:
        results = await asyncio.gather(
            *(redeem(pool, code, user_id, quota=quota) for _ in range(20)),
            return_exceptions=True,
        )
    finally:
        await pool.close()
    assert results.count(TOP_UP) == 1, results
    assert all(isinstance(r, RedemptionUsed) for r in results if r != TOP_UP), results

    assert await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id) == TOP_UP
    [log] = await top_ups(env.pg, user_id)
    assert log["quota"] == TOP_UP
    row = await env.pg.fetchrow(
        "SELECT status, redeemed_by, redeemed_time FROM redemptions WHERE key = $1", code
    )
    assert (row["status"], row["redeemed_by"]) == (3, user_id) and row["redeemed_time"] > 0

    # The cached empty balance was dropped, so this request sees the top-up right away
    # (instead of after the cache expires, minutes later).
    assert await ask(env, key) == "Echo: worth paying for"


async def test_codes_that_cannot_be_redeemed(env: LedgerEnv, quota: QuotaStore) -> None:
    user_id, _ = await new_user(env)
    with pytest.raises(UnknownRedemption):
        await redeem(env.pg, "0" * 32, user_id, quota=quota)

    disabled, for_nobody = await create_redemptions(env.pg, "odd", 500, 2, created_by=1)
    await env.pg.execute("UPDATE redemptions SET status = 2 WHERE key = $1", disabled)
    with pytest.raises(RedemptionDisabled):
        await redeem(env.pg, disabled, user_id, quota=quota)

    # A failed top-up does not use the code up: it can still be redeemed by a real user.
    with pytest.raises(UnknownUser):
        await redeem(env.pg, for_nobody, 10**9, quota=quota)
    assert await redeem(env.pg, for_nobody, user_id, quota=quota) == 500
    with pytest.raises(RedemptionUsed):
        await redeem(env.pg, for_nobody, user_id, quota=quota)
    assert await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id) == 500
    assert len(await top_ups(env.pg, user_id)) == 1

    for name, amount, count in (("", 1, 1), ("x" * 21, 1, 1), ("ok", 0, 1), ("ok", 1, 101)):
        with pytest.raises(RedemptionError):
            await create_redemptions(env.pg, name, amount, count, created_by=1)


async def test_cli_creates_and_redeems_codes(env: LedgerEnv, quota: QuotaStore) -> None:
    user_id, _ = await new_user(env)
    username = await env.pg.fetchval("SELECT username FROM users WHERE id = $1", user_id)
    out = run_cli(env, "redemption", "create", "--name", "cli", "--quota", "1000", "--count", "3")
    codes = out.stdout.split()
    assert len(codes) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", c) for c in codes)
    assert len(set(codes)) == 3

    # A cached balance for the user, as auth leaves one: the CLI must drop it.
    balance_key = env.ns.user_key(user_id, "q", "u", user_id, "bal")
    await quota.load_balances(token_id=0, token_balance=None, user_id=user_id, user_balance=0)
    assert await env.redis.exists(balance_key)
    assert run_cli(env, "redemption", "redeem", "--user", username, codes[0]).stdout.strip() == (
        "1000"
    )
    assert not await env.redis.exists(balance_key)
    assert await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id) == 1000

    again = run_cli(env, "redemption", "redeem", "--user", username, codes[0], ok=False)
    assert "already been used" in again.stderr
    assert await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id) == 1000
