"""Reservation and settlement against the real Redis (ids far above those the e2e stack
uses in the same namespace)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from unigate.namespace import Namespace
from unigate.quota import (
    Balances,
    BatchShare,
    QuotaStore,
    RateWindow,
    ReserveOutcome,
    Settlement,
    Snapshot,
)


async def test_reserve_needs_load_then_books_both_balances(redis: Redis, namespace: str) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    kw = dict(token_id=900001, user_id=900001, unlimited=False, now_ms=1)
    assert (
        await q.reserve(reservation_id="a", amount=10, **kw)
    ).outcome is ReserveOutcome.NEEDS_LOAD
    await q.load_balances(token_id=900001, token_balance=25, user_id=900001, user_balance=1000)
    assert (await q.reserve(reservation_id="a", amount=10, **kw)).outcome is ReserveOutcome.RESERVED
    assert (await q.reserve(reservation_id="b", amount=10, **kw)).outcome is ReserveOutcome.RESERVED
    assert (
        await q.reserve(reservation_id="c", amount=10, **kw)
    ).outcome is ReserveOutcome.TOKEN_EXHAUSTED
    # Settling "a" at a real cost of 3 frees 7 of it: 25 - 3 - 10 (b) = 12 left.
    released = await q.settle([Settlement("a", 900001, 900001, charged=3, unlimited=False)])
    assert released == 1
    assert (await q.reserve(reservation_id="c", amount=12, **kw)).outcome is ReserveOutcome.RESERVED
    # Settling twice releases nothing more.
    assert await q.settle([Settlement("a", 900001, 900001, charged=0, unlimited=False)]) == 0


async def test_user_balance_limits_unlimited_tokens(redis: Redis, namespace: str) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    await q.load_balances(token_id=900002, token_balance=None, user_id=900002, user_balance=5)
    kw = dict(token_id=900002, user_id=900002, unlimited=True, now_ms=1)
    assert (await q.reserve(reservation_id="u1", amount=5, **kw)).outcome is ReserveOutcome.RESERVED
    assert (
        await q.reserve(reservation_id="u2", amount=1, **kw)
    ).outcome is ReserveOutcome.USER_EXHAUSTED


async def test_concurrent_reservations_never_overspend(redis: Redis, namespace: str) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    await q.load_balances(token_id=900003, token_balance=50, user_id=900003, user_balance=10**9)
    results = await asyncio.gather(
        *(
            q.reserve(
                reservation_id=f"r{i}",
                token_id=900003,
                user_id=900003,
                amount=1,
                unlimited=False,
                now_ms=1,
            )
            for i in range(200)
        )
    )
    assert [r.outcome for r in results].count(ReserveOutcome.RESERVED) == 50


async def test_rate_window_refuses_past_its_limit_and_books_nothing(
    redis: Redis, namespace: str
) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    await q.load_balances(token_id=900004, token_balance=None, user_id=900004, user_balance=100)
    window = (RateWindow("t:900004:rpm", 2, 1),)
    kw = dict(token_id=900004, user_id=900004, amount=10, unlimited=True, now_ms=120_000)
    first = await q.reserve(reservation_id="w1", windows=window, **kw)
    assert (first.outcome, first.counts) == (ReserveOutcome.RESERVED, (1,))
    assert (await q.reserve(reservation_id="w2", windows=window, **kw)).counts == (2,)
    refused = await q.reserve(reservation_id="w3", windows=window, **kw)
    assert (refused.outcome, refused.violated, refused.violated_count) == (
        ReserveOutcome.RATE_LIMITED,
        0,
        2,
    )
    # The refused request reserved no quota: 100 - 2 * 10 = 80 are still free.
    assert (await q.reserve(reservation_id="w4", **{**kw, "amount": 80})).outcome is (
        ReserveOutcome.RESERVED
    )
    # The next minute is a new window.
    await q.settle([Settlement("w4", 900004, 900004, charged=0, unlimited=True)])
    later = await q.reserve(
        reservation_id="w5", windows=window, **{**kw, "amount": 0, "now_ms": 180_000}
    )
    assert later.counts == (1,)


async def test_a_charge_settled_while_a_balance_loads_is_not_lost(
    redis: Redis, namespace: str
) -> None:
    """Redis lost the balance; auth reads Postgres (100) just before billing commits a charge
    of 30 there and settles it. The cached balance must come out at 70, never 100."""
    q = QuotaStore(redis, Namespace(namespace))
    ns = Namespace(namespace)
    kw = dict(token_id=900005, user_id=900005, unlimited=False, now_ms=1)
    assert (await q.reserve(reservation_id="l1", amount=1, **kw)).outcome is (
        ReserveOutcome.NEEDS_LOAD
    )
    await q.begin_load(token_id=900005, user_id=900005)
    read_from_postgres = (100, 1000)  # before the charge below was committed
    await q.settle([Settlement("gone", 900005, 900005, charged=30, unlimited=False)])
    await q.load_balances(
        token_id=900005,
        token_balance=read_from_postgres[0],
        user_id=900005,
        user_balance=read_from_postgres[1],
    )
    assert int(await redis.get(ns.user_key(900005, "q", "t", 900005, "bal"))) == 70
    assert int(await redis.get(ns.user_key(900005, "q", "u", 900005, "bal"))) == 970
    # The load's record is gone, and later charges go straight to the cached balance.
    assert not await redis.exists(ns.user_key(900005, "q", "t", 900005, "ld"))
    await q.settle([Settlement("later", 900005, 900005, charged=5, unlimited=False)])
    assert int(await redis.get(ns.user_key(900005, "q", "t", 900005, "bal"))) == 65
    # With nothing cached and no load under way a charge leaves nothing behind: the next
    # load reads it from Postgres.
    await q.settle([Settlement("x", 900006, 900006, charged=5, unlimited=False)])
    assert not await redis.exists(ns.user_key(900006, "q", "t", 900006, "ld"))
    assert not await redis.exists(ns.user_key(900006, "q", "t", 900006, "bal"))


def _charge(rid: str, owner: int, charged: int, xid: int) -> Settlement:
    return Settlement(rid, owner, owner, charged=charged, unlimited=False, xid=xid)


async def _balance(redis: Redis, ns: Namespace, kind: str, owner: int) -> int:
    return int(await redis.get(ns.user_key(owner, "q", kind, owner, "bal")))


async def test_a_load_subtracts_exactly_the_charges_its_snapshot_did_not_see(
    redis: Redis, namespace: str
) -> None:
    """Postgres read under snapshot xmin 150, xmax 210, 200 running: a charge committed by
    transaction 100 is in the read, those of 200 (running then) and 250 (later) are not."""
    ns = Namespace(namespace)
    q = QuotaStore(redis, ns)
    await q.begin_load(token_id=900010, user_id=900010)
    await q.settle(
        [
            _charge("s1", 900010, 30, 100),
            _charge("s2", 900010, 7, 200),
            _charge("s3", 900010, 5, 250),
        ]
    )
    await q.load_balances(
        token_id=900010,
        token_balance=100,
        user_id=900010,
        user_balance=1000,
        snapshot=Snapshot(xmin=150, xmax=210, running=(200,)),
    )
    assert await _balance(redis, ns, "t", 900010) == 88
    assert await _balance(redis, ns, "u", 900010) == 988
    # A charge the read saw, settled only now (billing was slow, or redelivered it), is in the
    # balance already; a later one is not.
    await q.settle([_charge("s0", 900010, 11, 90), _charge("s4", 900010, 3, 260)])
    assert await _balance(redis, ns, "t", 900010) == 85
    # A late settlement of a reservation settled before (or lost) mirrors nothing.
    late = Settlement("s4", 900010, 900010, charged=3, unlimited=False, xid=0, only_if_open=True)
    await q.settle([late])
    assert await _balance(redis, ns, "t", 900010) == 85


async def test_a_refresh_replaces_a_cached_balance_exactly_and_yields_to_a_top_up(
    redis: Redis, namespace: str
) -> None:
    ns = Namespace(namespace)
    q = QuotaStore(redis, ns, balance_ttl=600)
    await q.load_balances(token_id=900011, token_balance=50, user_id=900011, user_balance=500)
    assert await q.begin_refresh(token_id=900011, user_id=900011) == (True, True)
    # A second refresh meanwhile (another auth process) does not own it.
    assert await q.begin_refresh(token_id=900011, user_id=900011) == (False, False)
    await q.settle([_charge("r1", 900011, 10, 300), _charge("r2", 900011, 4, 400)])
    assert await _balance(redis, ns, "t", 900011) == 36
    # Postgres said 62 (drifted up: say a refund the cache missed), having seen 300, not 400.
    read = Balances(900011, 62, 900011, 700, Snapshot(xmin=350, xmax=350))
    await q.refresh_balances(read, token=True, user=True)
    assert await _balance(redis, ns, "t", 900011) == 58
    assert await _balance(redis, ns, "u", 900011) == 696
    assert 590 < await redis.ttl(ns.user_key(900011, "q", "t", 900011, "bal")) <= 600
    # A top-up drops the balance while a refresh is under way: the refresh writes nothing.
    assert await q.begin_refresh(token_id=900011, user_id=900011) == (True, True)
    await q.forget_balances(tokens=[(900011, 900011)], user_ids=[])
    await q.refresh_balances(read, token=True, user=True)
    assert not await redis.exists(ns.user_key(900011, "q", "t", 900011, "bal"))


async def test_reservation_takes_what_is_left_down_to_its_least(
    redis: Redis, namespace: str
) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    await q.load_balances(token_id=900110, token_balance=10, user_id=900110, user_balance=7)
    kw = dict(token_id=900110, user_id=900110, unlimited=False, now_ms=1)
    # The user has 7 of the 10 asked: 7 are reserved, the smaller balance wins.
    first = await q.reserve(reservation_id="s1", amount=10, least=2, **kw)
    assert (first.outcome, first.amount) == (ReserveOutcome.RESERVED, 7)
    # Nothing left: refused, however little is asked.
    refused = await q.reserve(reservation_id="s2", amount=10, least=1, **kw)
    assert refused.outcome is ReserveOutcome.USER_EXHAUSTED
    await q.settle([Settlement("s1", 900110, 900110, charged=5, unlimited=False)])
    # 2 left of both: a request whose least is 2 is served with exactly 2; one needing 3 not.
    assert (await q.reserve(reservation_id="s3", amount=9, least=3, **kw)).outcome is (
        ReserveOutcome.USER_EXHAUSTED
    )
    last = await q.reserve(reservation_id="s4", amount=9, least=2, **kw)
    assert (last.outcome, last.amount) == (ReserveOutcome.RESERVED, 2)
    # Without ``least`` the amount is needed whole, as before.
    await q.settle([Settlement("s4", 900110, 900110, charged=0, unlimited=False)])
    assert (await q.reserve(reservation_id="s5", amount=3, **kw)).outcome is (
        ReserveOutcome.USER_EXHAUSTED
    )
    whole = await q.reserve(reservation_id="s6", amount=2, **kw)
    assert (whole.outcome, whole.amount) == (ReserveOutcome.RESERVED, 2)


async def test_lowering_a_reservation_to_its_real_cost(redis: Redis, namespace: str) -> None:
    q = QuotaStore(redis, Namespace(namespace))
    await q.load_balances(token_id=900111, token_balance=100, user_id=900111, user_balance=10**6)
    kw = dict(token_id=900111, user_id=900111, unlimited=False, now_ms=1)
    assert (await q.reserve(reservation_id="d1", amount=100, least=5, **kw)).amount == 100
    refused = await q.reserve(reservation_id="d2", amount=100, least=5, **kw)
    assert refused.outcome is ReserveOutcome.TOKEN_EXHAUSTED
    # The request cost 7: 93 are free again at once, before billing settles it.
    lower = dict(reservation_id="d1", token_id=900111, user_id=900111)
    assert await q.lower(**lower, cost=7) == 93
    assert await q.lower(**lower, cost=9) == 0  # never raised again
    assert (await q.reserve(reservation_id="d2", amount=100, least=5, **kw)).amount == 93
    # Settling releases what is still reserved (7) and charges the 7: nothing is left over.
    await q.settle([Settlement("d1", 900111, 900111, charged=7, unlimited=False)])
    assert await q.lower(**lower, cost=0) == 0  # settled: nothing to lower
    await q.settle([Settlement("d2", 900111, 900111, charged=93, unlimited=False)])
    assert (await q.reserve(reservation_id="d3", amount=1, least=1, **kw)).outcome is (
        ReserveOutcome.TOKEN_EXHAUSTED
    )
    # Only for the reservation's own token and user.
    await q.load_balances(token_id=900112, token_balance=10, user_id=900112, user_balance=10)
    other = dict(token_id=900112, user_id=900112, unlimited=False, now_ms=1)
    await q.reserve(reservation_id="d4", amount=10, **other)
    assert await q.lower(reservation_id="d4", token_id=900111, user_id=900112, cost=0) == 0


async def test_a_retried_reservation_is_booked_once(redis: Redis, namespace: str) -> None:
    """A client retries a reserve whose reply was lost (a connection cut, a failover): the
    second call answers as the first did and books neither the balance nor a window again."""
    ns = Namespace(namespace)
    q = QuotaStore(redis, ns)
    await q.load_balances(token_id=900201, token_balance=100, user_id=900202, user_balance=1000)
    kw = dict(
        reservation_id="once",
        token_id=900201,
        user_id=900202,
        amount=30,
        unlimited=False,
        now_ms=1,
        windows=(RateWindow("t:900201:rpm", 5, 1),),
    )
    first = await q.reserve(**kw)
    again = await q.reserve(**kw)
    assert first.outcome is again.outcome is ReserveOutcome.RESERVED
    assert (again.amount, again.counts) == (30, (1,))
    assert int(await redis.get(ns.user_key(900202, "q", "t", 900201, "rsvd"))) == 30
    assert int(await redis.get(ns.user_key(900202, "q", "u", 900202, "rsvd"))) == 30
    assert await q.settle([Settlement("once", 900201, 900202, charged=10, unlimited=False)]) == 1
    assert int(await redis.get(ns.user_key(900202, "q", "t", 900201, "rsvd"))) == 0


async def test_a_batch_reservation_splits_into_its_results_once(
    redis: Redis, namespace: str
) -> None:
    """A Message Batch's reservation becomes one reservation per result (each its share,
    context and usage record), each result split off once however often the split is asked
    (chunks of one, again, and all at once), the rest released when the last goes."""
    q = QuotaStore(redis, Namespace(namespace))
    user = token = 900077
    await q.load_balances(token_id=token, token_balance=100, user_id=user, user_balance=1000)
    kw = dict(token_id=token, user_id=user, unlimited=False, now_ms=1)
    reserved = await q.reserve(reservation_id="batch", amount=60, least=60, **kw)
    assert reserved.outcome is ReserveOutcome.RESERVED and reserved.amount == 60
    # 41 more than the 40 left: refused whole, nothing booked.
    assert (
        await q.reserve(reservation_id="other", amount=41, least=41, **kw)
    ).outcome is ReserveOutcome.TOKEN_EXHAUSTED
    shares = [BatchShare(f"c{i}", f"r{i}", 15, b"ctx", b"ru") for i in range(3)]
    split = dict(reservation_id="batch", token_id=token, user_id=user, requests=3, now_ms=5)
    assert not await q.split_batch(shares=shares[:1], **split)
    assert not await q.split_batch(shares=shares[:2], **split)  # c0 again: nothing twice
    rsvd_key = Namespace(namespace).user_key(user, "q", "t", token, "rsvd")
    assert int(await redis.get(rsvd_key)) == 60  # the shares are still reserved
    assert await q.split_batch(shares=shares, **split)
    # 3 x 15 split off, the 15 left over released; the batch's hash gone.
    assert int(await redis.get(rsvd_key)) == 45
    assert await q.split_batch(shares=shares, **split)  # again: nothing happens
    assert int(await redis.get(rsvd_key)) == 45
    held = {r.reservation_id: r for r in await q.stale_reservations(10, limit=100)}
    assert "batch" not in held
    assert [(held[f"r{i}"].amount, held[f"r{i}"].relay_usage) for i in range(3)] == [
        (15, b"ru")
    ] * 3
    # Each result settles as any request: its share released, its charge mirrored, once.
    await q.settle([Settlement(f"r{i}", token, user, charged=4, unlimited=False) for i in range(3)])
    # A redelivery settles late: its reservation is gone, so nothing moves.
    await q.settle([Settlement("r0", token, user, charged=4, unlimited=False, only_if_open=True)])
    assert int(await redis.get(rsvd_key)) == 0
    bal = Namespace(namespace).user_key(user, "q", "t", token, "bal")
    assert int(await redis.get(bal)) == 100 - 12


async def test_reclaiming_unbound_spares_frees_what_they_hold(redis: Redis, namespace: str) -> None:
    """A request the balance covers is not refused for spares no request holds: reclaiming
    releases the user's unbound spares (any key's, any gateway's), never a bound one, nor
    another user's of the same key group."""
    q = QuotaStore(redis, Namespace(namespace))
    user, other = 900_101, 900_101 + 1024  # the same key group
    await q.load_balances(token_id=user, token_balance=100, user_id=user, user_balance=10**6)
    await q.load_balances(token_id=other, token_balance=100, user_id=other, user_balance=10**6)
    common = dict(unlimited=False, context=b"", valid_ms=60_000, share=1)
    mine = await q.issue_spares(
        spare_ids=["sp1", "sp2", "sp3"], token_id=user, user_id=user, amount=20,
        gateway_id="gw-a", **common,
    )  # fmt: skip
    theirs = await q.issue_spares(
        spare_ids=["os1"], token_id=other, user_id=other, amount=20, gateway_id="gw-b", **common
    )
    assert (mine, theirs) == (["sp1", "sp2", "sp3"], ["os1"])
    assert await q.bind_spares(user, "gw-a", [("sp1", b"req", 1)]) == [True]
    kw = dict(token_id=user, user_id=user, unlimited=False, now_ms=1)
    # 100 - 3 x 20 held: 40 left, not the 60 asked for.
    refused = await q.reserve(reservation_id="r1", amount=60, **kw)
    assert refused.outcome is ReserveOutcome.TOKEN_EXHAUSTED
    assert await q.reclaim_spares(user_id=user, since_ms=0) == 2  # sp2, sp3; sp1 is bound
    assert (await q.reserve(reservation_id="r1", amount=60, **kw)).outcome is (
        ReserveOutcome.RESERVED
    )
    # A released spare can no longer be bound; the other user's is untouched.
    assert await q.bind_spares(user, "gw-a", [("sp2", b"req", 1)]) == [False]
    assert await q.reclaim_spares(user_id=user, since_ms=0) == 0
    assert await redis.exists(Namespace(namespace).user_key(other, "rsv", "os1"))
