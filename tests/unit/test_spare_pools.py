"""The gateway's side of spare reservations against the real Redis: a pool serves only
requests its spares cover, from addresses the key allows, within its validity; binding
writes the request's context; a broadcast drops every pool and releases its spares; a
decision asked for before a broadcast is not kept."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate.request_ids import new_request_id
from unigate.v1 import auth_pb2, events_pb2
from unigate_gateway.spares import HOT_REQUESTS, HOT_WINDOW_SECONDS, SparePools

PRICING = auth_pb2.Pricing(model_ratio=0.075, completion_ratio=4, group_ratio=1, cached_ratio=0.5)
KEY = ("sk-test", "gpt-4o-mini", "chat.completions")
TOKEN, USER = 31, 4242


@dataclass
class Env:
    redis: Redis
    ns: Namespace
    quota: QuotaStore
    pools: SparePools

    def rsvd(self) -> str:
        return self.ns.user_key(USER, "q", "u", USER, "rsvd")


@pytest.fixture
async def env(redis: Redis, namespace: str) -> AsyncIterator[Env]:
    ns = Namespace(f"{namespace}sp{secrets.token_hex(3)}")
    quota = QuotaStore(redis, ns)
    await quota.load_balances(token_id=TOKEN, token_balance=10**7, user_id=USER, user_balance=10**7)
    yield Env(redis, ns, quota, SparePools(redis, ns, "gw-1"))
    keys = [k async for k in redis.scan_iter(match=f"{ns.name}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


def request(max_tokens: int = 50, client_ip: str = "10.0.0.7") -> auth_pb2.AuthorizeRequest:
    return auth_pb2.AuthorizeRequest(
        api_key=KEY[0],
        model=KEY[1],
        endpoint=KEY[2],
        client_ip=client_ip,
        request_id=new_request_id(),
        estimated_prompt_tokens=20,
        max_tokens=max_tokens,
        gateway_id="gw-1",
    )


async def decision(
    env: Env, n: int, amount: int, subnets: tuple[str, ...] = (), refills: bool = False
) -> auth_pb2.AuthorizeResponse:
    """What auth answers a hot key's Authorize with: its own reservation and n spares."""
    ids = await env.quota.issue_spares(
        spare_ids=[f"{new_request_id()}.s{i}" for i in range(n)],
        token_id=TOKEN,
        user_id=USER,
        amount=amount,
        unlimited=False,
        gateway_id="gw-1",
        context=b"",
        valid_ms=1000,
        share=4,
    )
    assert len(ids) == n
    return auth_pb2.AuthorizeResponse(
        allowed=True,
        refills_spares=refills,
        reservation_id="the-request",
        token_id=TOKEN,
        token_name="k",
        user_id=USER,
        group="default",
        pricing=PRICING,
        candidates=[
            auth_pb2.ChannelCandidate(channel_id=1, priority=0, weight=1.0, family="openai"),
            auth_pb2.ChannelCandidate(channel_id=2, priority=5, weight=1.0, family="openai"),
        ],
        spares=auth_pb2.SpareReservations(
            ids=ids,
            amount=amount,
            valid_ms=1000,
            subnets=list(subnets),
            expired_time=-1,
            ceiling=65536,
            default_completion=512,
        ),
    )


def hot_with_refills_recorded(env: Env) -> list[auth_pb2.AuthorizeRequest]:
    """Make KEY hot, with a background refill that only records what it was asked."""
    asks: list[auth_pb2.AuthorizeRequest] = []

    async def refill(key: tuple[str, str, str], ask: auth_pb2.AuthorizeRequest) -> None:
        asks.append(ask)

    env.pools.refill = refill
    for _ in range(HOT_REQUESTS):
        env.pools.note(KEY)
    return asks


async def test_served_from_a_spare_bound_to_the_request(env: Env) -> None:
    for _ in range(HOT_REQUESTS):
        env.pools.note(KEY)
    wanted = env.pools.wanted(KEY)
    assert wanted > 0
    assert env.pools.wanted(KEY) == 0  # one Authorize asks at a time
    env.pools.keep(KEY, await decision(env, 2, 10_000), time.monotonic(), env.pools.generation)
    env.pools.asked(KEY)

    req = request()
    local = await env.pools.take(KEY, req)
    assert local is not None
    assert local.reservation_id.endswith((".s0", ".s1")) and local.reserved_quota == 10_000
    assert not local.HasField("spares") and not local.release_early
    # Its bound: what the spare covers, and the client's own limit here.
    assert local.max_output_tokens == 50
    # The priority tier first, whatever the order auth sent.
    assert [c.channel_id for c in local.candidates] == [2, 1]
    fields = await env.redis.hgetall(env.ns.user_key(USER, "rsv", local.reservation_id))
    assert b"sp" not in fields
    ctx = events_pb2.ReservationContext.FromString(fields[b"x"])
    assert (ctx.request_id, ctx.client_ip, ctx.model) == (req.request_id, "10.0.0.7", KEY[1])
    assert ctx.pricing == PRICING


async def test_only_requests_the_spares_cover_and_the_key_allows(env: Env) -> None:
    env.pools.keep(KEY, await decision(env, 2, 300, subnets=("10.0.0.0/8",)), time.monotonic(), 0)
    # A request reserving more than a spare holds is authorized by auth.
    assert await env.pools.take(KEY, request(max_tokens=4000)) is None
    # So is one from an address outside the key's subnets (auth refuses it in its words).
    assert await env.pools.take(KEY, request(client_ip="192.0.2.1")) is None
    assert await env.pools.take(KEY, request(max_tokens=5)) is not None


async def test_expired_pool_is_never_used_and_its_spares_go_back(env: Env) -> None:
    before = int(await env.redis.get(env.rsvd()) or 0)
    # Sent 2 s ago: past its validity on arrival.
    env.pools.keep(KEY, await decision(env, 3, 1000), time.monotonic() - 2, 0)
    assert await env.pools.take(KEY, request()) is None
    await env.pools.close()
    assert int(await env.redis.get(env.rsvd()) or 0) == before


async def test_a_broadcast_drops_every_pool_and_stale_decisions(env: Env) -> None:
    before = int(await env.redis.get(env.rsvd()) or 0)
    env.pools.keep(KEY, await decision(env, 3, 1000), time.monotonic(), 0)
    asked_at = env.pools.generation
    env.pools.drop_all()  # config.changed
    assert await env.pools.take(KEY, request()) is None
    # An Authorize sent before the broadcast: its spares are released, not kept.
    env.pools.keep(KEY, await decision(env, 3, 1000), time.monotonic(), asked_at)
    assert await env.pools.take(KEY, request()) is None
    await env.pools.close()
    assert int(await env.redis.get(env.rsvd()) or 0) == before


async def test_a_spare_released_meanwhile_sends_the_request_to_auth(env: Env) -> None:
    d = await decision(env, 2, 1000)
    env.pools.keep(KEY, d, time.monotonic(), 0)
    # The sweeper (or a shutdown) released them in Redis.
    await env.quota.release_spares([(rid, TOKEN, USER) for rid in d.spares.ids])
    assert await env.pools.take(KEY, request()) is None
    assert await env.pools.take(KEY, request()) is None  # the pool is gone with it
    await asyncio.sleep(0)


async def test_a_hot_pool_asks_for_the_next_one_before_it_runs_dry(env: Env) -> None:
    for _ in range(HOT_REQUESTS):
        env.pools.note(KEY)
    env.pools.keep(KEY, await decision(env, 8, 1000), time.monotonic(), 0)
    served = [await env.pools.take(KEY, request()) for _ in range(6)]
    assert all(d is not None for d in served)
    # Two of eight left (REFILL_AT a quarter): this request goes to auth, asking for spares.
    assert await env.pools.take(KEY, request()) is None
    assert env.pools.wanted(KEY) > 0
    # While that Authorize is out, the last two are still served here.
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is None  # dry
    env.pools.asked(KEY)
    # A key that is not hot (its window passed) uses its pool to the last spare.
    env.pools.keep(KEY, await decision(env, 4, 1000), time.monotonic(), 0)
    env.pools._heat.clear()
    assert all([await env.pools.take(KEY, request()) is not None for _ in range(4)])
    await env.pools.close()


async def test_a_hot_pool_is_refilled_in_the_background_by_an_auth_that_takes_refills(
    env: Env,
) -> None:
    """At the low water the request is served from what is left, and the next pool is asked
    for by a spares-only Authorize of its own, one at a time."""
    asks: list[tuple[tuple[str, str, str], auth_pb2.AuthorizeRequest]] = []
    answered, kept = asyncio.Event(), asyncio.Event()

    async def refill(key: tuple[str, str, str], ask: auth_pb2.AuthorizeRequest) -> None:
        asks.append((key, ask))
        await answered.wait()
        env.pools.asked(key)
        env.pools.keep(key, await decision(env, 8, 1000, refills=True), time.monotonic(), 0)
        kept.set()

    env.pools.refill = refill
    for _ in range(HOT_REQUESTS):
        env.pools.note(KEY)
    env.pools.keep(KEY, await decision(env, 8, 1000, refills=True), time.monotonic(), 0)
    served = [await env.pools.take(KEY, request()) for _ in range(6)]
    assert all(d is not None for d in served)
    # Two of eight left: served all the same, and the refill is under way.
    trigger = request(max_tokens=7)
    assert await env.pools.take(KEY, trigger) is not None
    await asyncio.sleep(0)
    [(key, ask)] = asks
    assert key == KEY
    assert ask.spares_only and ask.spares_wanted == 2 * HOT_REQUESTS
    assert ask.request_id != trigger.request_id
    assert (ask.api_key, ask.model, ask.endpoint, ask.max_tokens) == (
        trigger.api_key,
        trigger.model,
        trigger.endpoint,
        7,
    )
    # The last spare is served; no second refill while the first is out.
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is None  # dry: this one goes to auth
    assert len(asks) == 1
    answered.set()
    await asyncio.wait_for(kept.wait(), 5)
    # The new pool serves.
    assert await env.pools.take(KEY, request()) is not None
    await env.pools.close()


async def test_a_pool_near_the_end_of_its_validity_is_refilled_with_spares_left(
    env: Env,
) -> None:
    """A hot key too slow to use three quarters of its pool within the pool's second still
    has the next pool asked for in the background before this one expires, not by the
    request that finds it expired (a CI run saw one request go to auth per refill)."""
    asks = hot_with_refills_recorded(env)
    young = await decision(env, 8, 1000, refills=True)
    env.pools.keep(KEY, young, time.monotonic(), 0)
    assert await env.pools.take(KEY, request()) is not None
    await asyncio.sleep(0)
    assert asks == []  # seven of eight left, most of its second ahead: no refill
    # The same pool at 0.8 s of its 1 s (sent 0.8 s ago), with seven spares left.
    old = await decision(env, 8, 1000, refills=True)
    env.pools.keep(KEY, old, time.monotonic() - 0.8, 0)
    assert await env.pools.take(KEY, request()) is not None  # served all the same
    await asyncio.sleep(0)
    [ask] = asks
    assert ask.spares_only and ask.spares_wanted > 0
    # One refill at a time.
    assert await env.pools.take(KEY, request()) is not None
    await asyncio.sleep(0)
    assert len(asks) == 1
    await env.pools.close()


async def test_an_auth_without_refills_is_asked_by_the_request_itself(env: Env) -> None:
    asks = hot_with_refills_recorded(env)
    # A decision from an auth that would reserve for a refill as for a request.
    env.pools.keep(KEY, await decision(env, 4, 1000), time.monotonic(), 0)
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is not None
    assert await env.pools.take(KEY, request()) is None
    assert asks == []
    await env.pools.close()


async def test_a_key_stays_as_hot_as_its_last_window_when_the_next_begins(env: Env) -> None:
    """The pool asked for at the start of a window is sized by the window before it, not by
    the one or two requests of the new one; a key quiet for a whole window is cold again."""
    for _ in range(10):
        env.pools.note(KEY)
    assert env.pools.wanted(KEY) == 20
    env.pools.asked(KEY)
    env.pools._heat[KEY].since -= HOT_WINDOW_SECONDS + 0.01  # that window has just ended
    env.pools.note(KEY)
    assert env.pools._heat[KEY].count == 1
    assert env.pools.wanted(KEY) == 20
    env.pools.asked(KEY)
    # More in the new window than in the last: the new count is the rate.
    for _ in range(14):
        env.pools.note(KEY)
    assert env.pools.wanted(KEY) == 30
    env.pools.asked(KEY)
    # A whole window without a request: the next one starts cold.
    env.pools._heat[KEY].since -= 2 * HOT_WINDOW_SECONDS + 0.01
    env.pools.note(KEY)
    assert env.pools.wanted(KEY) == 0


async def test_bindings_made_together_go_in_one_call_each_answered_its_own(env: Env) -> None:
    """Requests of one user taking spares in the same turn of the event loop: one script
    call binds them all; each request gets its own spare, bound to its own context, and a
    spare released meanwhile fails only its own request. A binding made while that call is
    in Redis goes in a call of its own, without waiting for it."""
    d = await decision(env, 16, 1000)
    env.pools.keep(KEY, d, time.monotonic(), 0)
    calls: list[int] = []
    bind_spares = env.quota.bind_spares

    async def counted(user_id: int, gateway_id: str, binds: list[tuple[str, bytes, int]]):  # type: ignore[no-untyped-def]
        calls.append(len(binds))
        if len(calls) == 1:
            # The later request arrives while this call is in Redis.
            late.append(asyncio.ensure_future(env.pools.take(KEY, reqs[-1])))
            await asyncio.sleep(0.05)
        return await bind_spares(user_id, gateway_id, binds)

    late: list[asyncio.Future[auth_pb2.AuthorizeResponse | None]] = []
    env.pools._stores[""] = env.quota
    env.quota.bind_spares = counted  # type: ignore[method-assign]
    # The pool hands out ids from its end: the fourth taken is d.spares.ids[12].
    await env.quota.release_spares([(d.spares.ids[12], TOKEN, USER)])
    reqs = [request() for _ in range(7)]
    served = list(await asyncio.gather(*(env.pools.take(KEY, r) for r in reqs[:6])))
    served.append(await late[0])
    # The late one did not wait for the first call: its own went while that one slept.
    assert calls == [6, 1]
    assert served[3] is None  # its spare was gone: to auth
    for req, local in zip(reqs, served, strict=True):
        if local is None:
            continue
        fields = await env.redis.hgetall(env.ns.user_key(USER, "rsv", local.reservation_id))
        ctx = events_pb2.ReservationContext.FromString(fields[b"x"])
        assert ctx.request_id == req.request_id and b"sp" not in fields
    assert len({d.reservation_id for d in served if d is not None}) == 6
