"""A hot key served from spare reservations (no call to auth per request) keeps every
guarantee of a request authorized by auth, across two gateways of one stack:

* a key revoked, its user disabled or its balance lowered on one side is refused by another
  gateway serving that key at full speed within a second of the change;
* a user driven to exhaustion concurrently through two gateways is never charged more than
  its balance, and every request the provider served is in the ledger exactly once.

The crash case (a gateway SIGKILLed while serving from spares) is in test_gateway_crash.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests.e2e.conftest import ExtraGateway, broadcast_change
from tests.e2e.test_auth_policies import HELLO, hot_key, new_key, new_user, sdk
from tests.e2e.test_metrics import scrape, total
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate.request_ids import new_request_id
from unigate.v1 import auth_pb2, auth_pb2_grpc
from unigate_cli.devstack import Stack

WORKERS = 4
BODY = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 5}
SERVED = "unigate_gateway_spare_served_total"


async def spares_served(ops_port: int) -> float:
    return total(await scrape(f"http://127.0.0.1:{ops_port}/metrics"), SERVED)


@dataclass
class Traffic:
    """Every request of a load: (when it was sent, monotonic; status; error code; id)."""

    seen: list[tuple[float, int, str, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def served(self) -> list[str]:
        return [rid for _, status, _, rid in self.seen if status == 200]


async def full_speed(url: str, key: str, traffic: Traffic) -> None:
    async with httpx.AsyncClient(timeout=30) as http:

        async def worker() -> None:
            while not traffic.stop.is_set():
                sent = time.monotonic()
                r = await http.post(
                    f"{url}/v1/chat/completions",
                    json=BODY,
                    headers={"Authorization": f"Bearer {key}"},
                )
                code = "" if r.status_code == 200 else r.json()["error"]["code"]
                traffic.seen.append((sent, r.status_code, code, r.headers["x-request-id"]))

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def _until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def assert_ledger_agrees(pg: asyncpg.Pool, token_id: int, served: list[str]) -> None:
    """Every request served has its row, once; the key's used quota is the sum of its rows;
    no row is named by a spare (an unused spare is released, never billed)."""
    await wait_for_rows(pg, token_id, len(served), within=30)

    async def settled() -> bool:
        ids = {
            r["request_id"]
            for r in await pg.fetch(
                "SELECT request_id FROM logs WHERE type = 2 AND token_id = $1", token_id
            )
        }
        return set(served) <= ids

    await _until(settled, 30, "served requests missing from the ledger")
    n, distinct, total_quota = await pg.fetchrow(
        "SELECT count(*), count(DISTINCT request_id), coalesce(sum(quota), 0) FROM logs"
        " WHERE type = 2 AND token_id = $1",
        token_id,
    )
    assert n == distinct
    assert set(served) <= {
        r["request_id"]
        for r in await pg.fetch("SELECT request_id FROM logs WHERE token_id = $1", token_id)
    }
    assert not await pg.fetchval(
        "SELECT count(*) FROM logs WHERE token_id = $1 AND request_id LIKE '%.s%'", token_id
    )
    used = await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token_id)
    assert used == total_quota


Change = Callable[[Stack, asyncpg.Pool, int, int], Awaitable[None]]


async def revoke_key(stack: Stack, pg: asyncpg.Pool, user_id: int, token_id: int) -> None:
    await pg.execute("UPDATE tokens SET status = 2 WHERE id = $1", token_id)
    await broadcast_change(stack, "token", [token_id])


async def disable_user(stack: Stack, pg: asyncpg.Pool, user_id: int, token_id: int) -> None:
    await pg.execute("UPDATE users SET status = 2 WHERE id = $1", user_id)
    await broadcast_change(stack, "user", [user_id])


async def lower_balance(stack: Stack, pg: asyncpg.Pool, user_id: int, token_id: int) -> None:
    await pg.execute("UPDATE tokens SET remain_quota = 0 WHERE id = $1", token_id)
    await broadcast_change(stack, "token", [token_id])


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (revoke_key, 401, "key_disabled"),
        (disable_user, 403, "user_disabled"),
        (lower_balance, 403, "insufficient_quota"),
    ],
)
async def test_a_change_stops_a_gateway_serving_from_spares_within_a_second(
    stack: Stack,
    pg: asyncpg.Pool,
    channel_id: int,
    extra_gateway: Callable[..., ExtraGateway],
    change: Change,
    status: int,
    code: str,
) -> None:
    other = extra_gateway()
    user_id = await new_user(pg, quota=10**9)
    token = await new_key(pg, user_id, remain_quota=10**8)
    traffic = Traffic()
    before = await spares_served(other.ops_port)
    load = asyncio.create_task(full_speed(other.url, token.key, traffic))
    try:
        # At full speed the key is hot: the other gateway serves it from spares.
        async def from_spares() -> bool:
            assert not load.done()
            return await spares_served(other.ops_port) - before >= 20

        await _until(from_spares, 30, "the hot key was never served from spares")
        changed = time.monotonic()
        await change(stack, pg, user_id, token.id)
        # Keep going until a good while past the bound.
        await _until(lambda: asyncio.sleep(0, result=time.monotonic() > changed + 2.5), 10, "clock")
    finally:
        traffic.stop.set()
        await load
    before_change = [s for s in traffic.seen if s[0] < changed]
    after_bound = [s for s in traffic.seen if s[0] > changed + 1.0]
    assert before_change and all(s[1] == 200 for s in before_change), before_change[-5:]
    assert len(after_bound) >= 10
    late = [s for s in after_bound if (s[1], s[2]) != (status, code)]
    assert not late, f"served or refused otherwise more than 1 s after the change: {late[:5]}"
    first_refusal = min(s[0] for s in traffic.seen if s[1] == status) - changed
    print(f"\nfirst refusal {first_refusal * 1000:.0f} ms after the change")
    await assert_ledger_agrees(pg, token.id, traffic.served())


async def test_exhaustion_through_two_gateways_never_overspends(
    stack: Stack,
    pg: asyncpg.Pool,
    sim_app: Starlette,
    channel_id: int,
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    other = extra_gateway()
    # The real cost of this exact request.
    probe = await new_key(pg)
    await sdk(stack, probe.key).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=5
    )
    await wait_for_rows(pg, probe.id, 1)
    cost = await pg.fetchval("SELECT quota FROM logs WHERE token_id = $1", probe.id)
    assert cost > 0
    sim_app.state.calls.clear()

    balance = 120 * cost
    user_id = await new_user(pg, quota=balance)
    token = await new_key(pg, user_id)  # unlimited: the user's balance is the bound
    gateways = [(stack.gateway_url, stack.config.ports.gateway_ops), (other.url, other.ops_port)]
    before = [await spares_served(ops) for _, ops in gateways]
    outcomes: list[tuple[int, str, str]] = []

    async def drive(url: str) -> None:
        async with httpx.AsyncClient(timeout=30) as http:

            async def worker() -> None:
                while True:
                    r = await http.post(
                        f"{url}/v1/chat/completions",
                        json=BODY,
                        headers={"Authorization": f"Bearer {token.key}"},
                    )
                    code = "" if r.status_code == 200 else r.json()["error"]["code"]
                    outcomes.append((r.status_code, code, r.headers["x-request-id"]))
                    if r.status_code != 200:
                        assert (r.status_code, code) == (403, "insufficient_quota"), r.text
                        # Refused: the balance is (about to be) spent. A few more tries catch
                        # quota given back by requests and spares still settling.
                        refusals = sum(o[0] != 200 for o in outcomes)
                        if refusals > 40:
                            return
                        await asyncio.sleep(0.05)

            await asyncio.gather(*(worker() for _ in range(WORKERS)))

    await asyncio.gather(*(drive(url) for url, _ in gateways))
    after = [await spares_served(ops) for _, ops in gateways]
    served = [rid for status, _, rid in outcomes if status == 200]
    from_spares = sum(after) - sum(before)
    print(f"\n{len(served)} served ({from_spares:.0f} from spares), balance {balance // cost}x")
    assert from_spares > 0
    assert len(served) > 0
    assert len(sim_app.state.calls) == len(served)
    await assert_ledger_agrees(pg, token.id, served)
    spent, costs = await pg.fetchrow(
        "SELECT sum(quota), array_agg(DISTINCT quota) FROM logs WHERE token_id = $1", token.id
    )
    print(f"spent {spent} of {balance}; costs per request {costs}")
    quota, used = await pg.fetchrow("SELECT quota, used_quota FROM users WHERE id = $1", user_id)
    assert spent <= balance
    assert (quota, used) == (balance - spent, spent)
    assert quota >= 0


async def test_a_hot_keys_pools_are_refilled_in_the_background(
    stack: Stack, pg: asyncpg.Pool, channel_id: int
) -> None:
    """A steadily hot key's requests do not wait for its next pool: the gateway asks for it
    by a spares-only Authorize while the last quarter of the current one serves. Nothing is
    reserved for those refills: every row is a request served, none is named by a refill or
    a spare."""
    ports = stack.config.ports

    async def decisions(outcome: str) -> float:
        samples = await scrape(f"http://127.0.0.1:{ports.auth_ops}/metrics")
        return total(samples, "unigate_auth_decisions_total", outcome=outcome)

    user_id = await new_user(pg, quota=10**9)
    token = await new_key(pg, user_id, remain_quota=10**8)
    refills_before, allowed_before = await decisions("spares_refill"), await decisions("allowed")
    served_before = await spares_served(ports.gateway_ops)
    traffic = Traffic()
    load = asyncio.create_task(full_speed(stack.gateway_url, token.key, traffic))
    started = time.monotonic()
    try:

        def refilled(at_least: float) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                assert not load.done()
                return await decisions("spares_refill") - refills_before >= at_least

            return check

        # Warmed up: the key is hot and its pools are full-sized.
        await _until(refilled(5), 30, "the hot key's pool was never refilled in the background")
        steady_asked, steady_refills = await decisions("allowed"), await decisions("spares_refill")
        await _until(refilled(15), 30, "the refills stopped")
        asked = await decisions("allowed") - steady_asked
        refills = await decisions("spares_refill") - steady_refills
    finally:
        traffic.stop.set()
        await load
    served = traffic.served()
    assert len(served) == len(traffic.seen)
    from_spares = await spares_served(ports.gateway_ops) - served_before
    rate = len(served) / (time.monotonic() - started)
    print(f"\n{len(served)} served ({rate:.0f}/s), {from_spares:.0f} from spares; steady part:")
    print(f"{asked:.0f} requests went to Authorize, {refills:.0f} refills")
    assert from_spares + await decisions("allowed") - allowed_before == len(served)
    # A request goes to auth itself only when a pool ran dry or expired before its refill
    # came back; with the refill on the request's path it was one request per pool (and
    # there were no refills). Seen: 0 of 10 here, 7 of 10 in CI before pools were sized by
    # the last window's rate as well, 9 of 9 in CI before pools were also refilled at a
    # quarter of their validity left.
    assert asked < refills
    await assert_ledger_agrees(pg, token.id, served)


async def test_a_spares_only_authorize_reserves_nothing_for_itself(
    stack: Stack, pg: asyncpg.Pool, redis: Redis, namespace: str, channel_id: int
) -> None:
    """Auth's side of the background refill: the key is checked as for a request, the spares
    are booked, and nothing is reserved for the call itself; a key that takes no spares gets
    none, a revoked key is refused."""
    user_id = await new_user(pg, quota=10**9)
    token = await new_key(pg, user_id, remain_quota=10**8)
    limited = await new_key(pg, user_id, remain_quota=10**8)
    await pg.execute("UPDATE tokens SET rpm_limit = 100 WHERE id = $1", limited.id)

    def ask(key: str, wanted: int = 8, only: bool = True) -> auth_pb2.AuthorizeRequest:
        return auth_pb2.AuthorizeRequest(
            api_key=key,
            model="gpt-4o-mini",
            client_ip="127.0.0.1",
            request_id=new_request_id(),
            endpoint="chat.completions",
            estimated_prompt_tokens=20,
            max_tokens=5,
            gateway_id="gw-refill-test",
            spares_wanted=wanted,
            spares_only=only,
        )

    channel = stack.client_channel("auth", "gateway")
    try:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        # The first pool comes with a request's decision (which also brings the balance into
        # Redis, where spares are booked against it); the refill follows.
        first = await auth.Authorize(ask(token.key, only=False), wait_for_ready=True)
        assert first.reservation_id and len(first.spares.ids) == 8
        asked = ask(token.key)
        refill = await auth.Authorize(asked, wait_for_ready=True)
        assert refill.allowed and refill.refills_spares
        assert (refill.reservation_id, refill.reserved_quota) == ("", 0)
        assert len(refill.spares.ids) == 8 and refill.spares.amount > 0
        assert [c.channel_id for c in refill.candidates] == [channel_id]
        assert refill.token_id == token.id and refill.pricing.model_ratio > 0

        async def reserved(rid: str) -> bool:
            return bool(await redis.exists(await hot_key(pg, namespace, user_id, "rsv", rid)))

        assert await reserved(refill.spares.ids[0])  # booked, as any request's reservation
        assert not await reserved(asked.request_id)  # the call itself holds nothing
        # A key with a rate limit is authorized per request: no spares for it.
        none = await auth.Authorize(ask(limited.key), wait_for_ready=True)
        assert none.allowed and not none.HasField("spares") and not none.reservation_id
        await pg.execute("UPDATE tokens SET status = 2 WHERE id = $1", token.id)
        await broadcast_change(stack, "token", [token.id])

        async def refused() -> bool:
            answer = await auth.Authorize(ask(token.key), wait_for_ready=True)
            return not answer.allowed and answer.error.code == "key_disabled"

        await _until(refused, 5, "a revoked key's refill was not refused")
    finally:
        await channel.close()
