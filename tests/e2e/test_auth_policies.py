"""The auth service's decisions, through the gateway with the openai SDK: every refusal path,
rate limits, exact quota under concurrency, propagation of changes, and Redis loss."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import nats
import openai
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import ExtraGateway, Tenant, broadcast_change
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate.db import bound_namespace
from unigate.namespace import USAGE_SCHEMA_VERSION, Namespace
from unigate.v1 import auth_pb2, auth_pb2_grpc, common_pb2, events_pb2
from unigate_cli.devstack import Stack

HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def sdk(stack_or_url: Stack | str, key: str, **headers: str) -> openai.AsyncOpenAI:
    base = stack_or_url if isinstance(stack_or_url, str) else stack_or_url.gateway_url
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=base + "/v1",
        max_retries=0,
        timeout=60,
        default_headers=headers or None,
    )


async def new_user(pg: asyncpg.Pool, **kw: Any) -> int:
    return await admin_writes.create_user(
        pg, username="u-" + secrets.token_hex(4), password="a-long-password", **kw
    )


async def new_key(pg: asyncpg.Pool, user_id: int = 1, **kw: Any) -> admin_writes.NewToken:
    kw.setdefault("unlimited_quota", "remain_quota" not in kw)
    return await admin_writes.create_token(pg, user_id=user_id, name="policy", **kw)


async def refused(client: openai.AsyncOpenAI, model: str = "gpt-4o-mini") -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=model, messages=HELLO)
    body = info.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return info.value


# ---- refusal paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_kw", "user_kw", "status", "code"),
    [
        ({"status": 2}, {}, 401, "key_disabled"),
        ({"expired_time": 1_000_000}, {}, 401, "key_expired"),
        ({"status": 4}, {}, 403, "insufficient_quota"),
        ({"remain_quota": 0}, {}, 403, "insufficient_quota"),
        ({}, {"quota": 0}, 403, "insufficient_quota"),
        ({"models": "gpt-4o"}, {}, 403, "model_not_allowed"),
        ({"subnet": "192.0.2.0/24"}, {}, 403, "ip_not_allowed"),
        ({}, {"status": 2}, 403, "user_disabled"),
    ],
)
async def test_refusals_never_reach_the_provider(
    stack: Stack,
    pg: asyncpg.Pool,
    sim_app: Starlette,
    channel_id: int,
    token_kw: dict[str, Any],
    user_kw: dict[str, Any],
    status: int,
    code: str,
) -> None:
    status_kw = {"status": token_kw.pop("status")} if "status" in token_kw else {}
    user_id = await new_user(pg, quota=user_kw.get("quota", 10**9), status=user_kw.get("status", 1))
    token = await new_key(pg, user_id, **token_kw)
    if status_kw:
        await pg.execute(
            "UPDATE tokens SET status = $1 WHERE id = $2", status_kw["status"], token.id
        )
    err = await refused(sdk(stack, token.key))
    assert (err.status_code, err.response.json()["error"]["code"]) == (status, code)
    assert sim_app.state.calls == []


async def test_subnet_uses_forwarded_for_only_behind_a_trusted_proxy(
    stack: Stack,
    pg: asyncpg.Pool,
    sim_app: Starlette,
    channel_id: int,
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    token = await new_key(pg, subnet="203.0.113.0/24, 2001:db8::/32")
    # The stack's gateway trusts 127.0.0.1, as it would trust nginx in front of it.
    ok = sdk(stack, token.key, **{"X-Forwarded-For": "198.51.100.9, 203.0.113.7"})
    reply = await ok.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content == "Echo: hello"
    v6 = sdk(stack, token.key, **{"X-Forwarded-For": "2001:db8::42"})
    await v6.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    outside = sdk(stack, token.key, **{"X-Forwarded-For": "198.51.100.9"})
    assert (await refused(outside)).status_code == 403
    # A gateway that trusts no proxy ignores the header: the peer (127.0.0.1) is outside.
    untrusting = extra_gateway(TRUSTED_PROXIES="")
    spoofed = sdk(untrusting.url, token.key, **{"X-Forwarded-For": "203.0.113.7"})
    assert (await refused(spoofed)).status_code == 403
    assert len(sim_app.state.calls) == 2


# ---- rate limits -------------------------------------------------------------------------


async def _away_from_minute_boundary() -> None:
    """Windows are per clock minute; start a short burst where it cannot straddle one."""
    if time.time() % 60 > 54:
        await asyncio.sleep(61 - time.time() % 60)


async def test_rpm_limit_with_openai_headers(
    stack: Stack, pg: asyncpg.Pool, sim_app: Starlette, channel_id: int
) -> None:
    token = await new_key(pg)
    await pg.execute("UPDATE tokens SET rpm_limit = 3 WHERE id = $1", token.id)
    client = sdk(stack, token.key)
    await _away_from_minute_boundary()
    remaining = []
    for _ in range(3):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == ["2", "1", "0"]
    err = await refused(client)
    assert err.status_code == 429
    assert err.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert err.response.json()["error"]["type"] == "requests"
    assert 1 <= int(err.response.headers["retry-after"]) <= 60
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(sim_app.state.calls) == 3


async def test_tpm_limit_counts_prompt_and_max_tokens(
    stack: Stack, pg: asyncpg.Pool, sim_app: Starlette, channel_id: int
) -> None:
    token = await new_key(pg)
    await pg.execute("UPDATE tokens SET tpm_limit = 500 WHERE id = $1", token.id)
    client = sdk(stack, token.key)
    await _away_from_minute_boundary()
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=450)
    assert info.value.response.json()["error"]["type"] == "tokens"
    assert len(sim_app.state.calls) == 1


async def test_user_rate_limit_is_shared_by_all_of_the_users_keys(
    stack: Stack, pg: asyncpg.Pool, channel_id: int
) -> None:
    user_id = await new_user(pg, quota=10**9, rpm_limit=2)
    first, second = await new_key(pg, user_id), await new_key(pg, user_id)
    await _away_from_minute_boundary()
    await sdk(stack, first.key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    await sdk(stack, second.key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    err = await refused(sdk(stack, first.key))
    assert err.status_code == 429
    assert "account" in err.response.json()["error"]["message"]


# ---- quota under concurrency -------------------------------------------------------------


async def test_concurrent_burst_never_overspends(
    stack: Stack, pg: asyncpg.Pool, sim_app: Starlette, channel_id: int
) -> None:
    # One probe call tells the real cost of this exact request.
    probe = await new_key(pg)
    await sdk(stack, probe.key).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=5
    )
    await wait_for_rows(pg, probe.id, 1)
    cost = await pg.fetchval("SELECT quota FROM logs WHERE token_id = $1", probe.id)
    assert cost > 0
    sim_app.state.calls.clear()

    token = await new_key(pg, remain_quota=50 * cost)
    client = sdk(stack, token.key)

    async def one() -> bool:
        try:
            # max_tokens keeps each reservation near the real cost, so many fit at once.
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
            return True
        except openai.PermissionDeniedError as err:
            assert err.response.json()["error"]["code"] == "insufficient_quota"
            return False

    results = await asyncio.gather(*(one() for _ in range(200)))
    served = sum(results)
    assert served > 0
    assert len(sim_app.state.calls) == served
    await wait_for_rows(pg, token.id, served)
    # Near the end of the balance a request goes upstream bounded to the output it can still
    # afford, so it may cost less than the probe and a 51st may fit (seen under load): what
    # must hold is the money, and that only such bounded requests cost less.
    probe_completion = await pg.fetchval(
        "SELECT completion_tokens FROM logs WHERE token_id = $1", probe.id
    )
    cheaper = await pg.fetch(
        "SELECT quota, completion_tokens FROM logs WHERE token_id = $1 AND quota < $2",
        token.id,
        cost,
    )
    assert all(r["completion_tokens"] < probe_completion for r in cheaper)
    assert served <= 50 + len(cheaper)
    total = await pg.fetchval("SELECT sum(quota) FROM logs WHERE token_id = $1", token.id)
    remain, used = await pg.fetchrow(
        "SELECT remain_quota, used_quota FROM tokens WHERE id = $1", token.id
    )
    assert total <= 50 * cost
    assert (remain, used) == (50 * cost - total, total)
    assert remain >= 0


# ---- changes reach every gateway ---------------------------------------------------------


async def test_revocation_and_top_up_reach_another_gateway_within_a_second(
    stack: Stack, pg: asyncpg.Pool, channel_id: int, extra_gateway: Callable[..., ExtraGateway]
) -> None:
    other = extra_gateway()
    user_id = await new_user(pg, quota=0)
    token = await new_key(pg, user_id)
    client = sdk(other.url, token.key)
    assert (await refused(client)).status_code == 403  # the user has no quota yet

    await pg.execute("UPDATE users SET quota = 10000000 WHERE id = $1", user_id)
    await broadcast_change(stack, "user", [user_id])
    await _eventually_within(
        1.0, lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    )

    await pg.execute("UPDATE tokens SET status = 2 WHERE id = $1", token.id)
    await broadcast_change(stack, "token", [token.id])

    async def revoked() -> None:
        assert (await refused(client)).status_code == 401

    await _eventually_within(1.0, revoked)


async def _eventually_within(seconds: float, attempt: Callable[[], Any]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await attempt()
            return
        except (AssertionError, openai.APIStatusError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# ---- Redis loss and the sweeper ----------------------------------------------------------


async def hot_key(pg: asyncpg.Pool, namespace: str, user_id: int, *parts: str | int) -> str:
    """A Redis key of hot state as auth and billing build it (bound to this database, in
    ``user_id``'s key group)."""
    return (await bound_namespace(pg, namespace)).user_key(user_id, *parts)


async def test_losing_redis_state_mid_run_keeps_serving_and_ledger_agrees(
    stack: Stack, pg: asyncpg.Pool, redis: Redis, namespace: str, channel_id: int
) -> None:
    token = await new_key(pg, remain_quota=10**7)
    client = sdk(stack, token.key)

    async def burst(n: int) -> None:
        await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO) for _ in range(n))
        )

    await burst(10)
    # What FLUSHALL does to us, without wiping other users of this Redis: every key of ours,
    # while the first burst's usage may still be on its way to the ledger.
    keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    await redis.delete(*keys)
    await burst(10)
    await wait_for_rows(pg, token.id, 20)
    await asyncio.sleep(0.5)
    total = await pg.fetchval("SELECT sum(quota) FROM logs WHERE token_id = $1", token.id)
    remain, used = await pg.fetchrow(
        "SELECT remain_quota, used_quota FROM tokens WHERE id = $1", token.id
    )
    assert (used, remain) == (total, 10**7 - total)
    cached = await redis.get(await hot_key(pg, namespace, 1, "q", "t", token.id, "bal"))
    # The reload waited for the first burst's charges to be applied, and subtracted exactly
    # those its read of Postgres did not see: the cached balance is the balance of record.
    assert cached is not None
    assert int(cached) == remain
    # Nothing stays reserved: every request settled, and the spare reservations the burst
    # made its gateway ask for go back unused within their validity (1 s) and a release.
    rsvd = await hot_key(pg, namespace, 1, "q", "t", token.id, "rsvd")
    deadline = time.monotonic() + 5
    while (open_reserved := int(await redis.get(rsvd) or 0)) != 0:
        assert time.monotonic() < deadline, f"{open_reserved} still reserved"
        await asyncio.sleep(0.1)


async def test_unsettled_reservation_is_swept_at_its_reserved_amount(
    stack: Stack, pg: asyncpg.Pool, redis: Redis, namespace: str, tenant: Tenant
) -> None:
    # Authorize directly, as a gateway that then dies would: no usage event ever follows.
    # As the gateway: only it may Authorize.
    channel = stack.client_channel("auth", "gateway")
    try:
        decision = await auth_pb2_grpc.AuthServiceStub(channel).Authorize(
            auth_pb2.AuthorizeRequest(
                api_key=tenant.key,
                model="gpt-4o-mini",
                client_ip="127.0.0.1",
                request_id="orphan-" + secrets.token_hex(8),
                endpoint="chat.completions",
                estimated_prompt_tokens=100,
                max_tokens=200,
            ),
            wait_for_ready=True,
        )
    except grpc.aio.AioRpcError as exc:  # pragma: no cover - diagnostic
        raise AssertionError(exc.details()) from exc
    finally:
        await channel.close()
    assert decision.allowed and decision.reserved_quota > 0
    await wait_for_rows(pg, tenant.token_id, 1, within=30)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["request_id"] == decision.reservation_id
    assert (row["error_code"], row["quota"]) == ("settled_by_sweeper", decision.reserved_quota)
    assert (
        await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", tenant.token_id)
        == decision.reserved_quota
    )
    assert not await redis.exists(
        await hot_key(pg, namespace, decision.user_id, "rsv", decision.reservation_id)
    )

    # The request's own event turns up after all (its gateway had been cut off from NATS):
    # the ledger takes the real figures, once, and moves every charge by the difference.
    real_quota = decision.reserved_quota // 3
    late = events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=decision.reservation_id,
        reservation_id=decision.reservation_id,
        reserved_quota=decision.reserved_quota,
        user_id=decision.user_id,
        token_id=decision.token_id,
        token_name=decision.token_name,
        channel_id=tenant.channel_id,
        model="gpt-4o-mini",
        upstream_model="gpt-4o-mini",
        endpoint="chat.completions",
        usage=common_pb2.Usage(prompt_tokens=100, completion_tokens=50, total_tokens=150),
        quota=real_quota,
        status_code=200,
        created_at_ms=row["created_at"] * 1000,
    )
    channel_used = await pg.fetchval(
        "SELECT used_quota FROM channels WHERE id = $1", tenant.channel_id
    )
    # The owner's cached balance (the key is unlimited, so the user's balance is what limits
    # it), which the sweeper charged the whole reservation.
    user_balance = await hot_key(pg, namespace, decision.user_id, "q", "u", decision.user_id, "bal")
    cached_before = await redis.get(user_balance)
    assert cached_before is not None
    nc = await nats.connect(stack.config.nats_url)
    try:
        js = nc.jetstream()
        for _ in range(2):  # and once more: a redelivery changes nothing further
            await js.publish(
                Namespace(namespace).usage_subject,
                events_pb2.UsageBatch(events=[late]).SerializeToString(),
                headers={"Nats-Msg-Id": secrets.token_hex(8)},
            )
    finally:
        await nc.close()
    deadline = time.monotonic() + 15
    while (await pg.fetchval("SELECT quota FROM logs WHERE id = $1", row["id"])) != real_quota:
        assert time.monotonic() < deadline, "the late event never corrected the swept row"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the redelivery, had it been applied, would show by now
    fixed = await pg.fetchrow("SELECT * FROM logs WHERE id = $1", row["id"])
    assert (fixed["error_code"], fixed["prompt_tokens"], fixed["completion_tokens"]) == (
        "",
        100,
        50,
    )
    assert fixed["channel_id"] == tenant.channel_id and not fixed["estimated"]
    # The cached balance gets back what the sweeper charged beyond the real cost, once.
    assert int(await redis.get(user_balance) or 0) == int(cached_before) + (
        decision.reserved_quota - real_quota
    )
    assert await pg.fetchval("SELECT count(*) FROM logs WHERE token_id = $1", tenant.token_id) == 1
    assert (
        await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", tenant.token_id)
        == real_quota
    )
    assert (
        await pg.fetchval("SELECT used_quota FROM channels WHERE id = $1", tenant.channel_id)
        == channel_used + real_quota
    )
    daily = await pg.fetchrow(
        "SELECT sum(requests) AS n, sum(quota) AS q, sum(prompt_tokens) AS p FROM usage_daily"
        " WHERE token_id = $1",
        tenant.token_id,
    )
    assert (daily["n"], daily["q"], daily["p"]) == (1, real_quota, 100)
