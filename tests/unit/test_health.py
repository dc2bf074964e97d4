"""Channel cooldowns against the real Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from unigate.health import EWMA_ALPHA, Averages, ChannelHealth, Outcomes
from unigate.namespace import Namespace


async def _forget(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def test_cooldown_doubles_per_failed_probe_not_per_concurrent_failure(
    redis: Redis, namespace: str
) -> None:
    h = ChannelHealth(redis, Namespace(namespace + "_h1"))
    try:
        first = await h.record_failure(7, now_ms=1_000_000)
        assert first == 1_001_000
        # Requests that were already in flight fail during the cooldown: no escalation.
        assert await h.record_failure(7, now_ms=1_000_100) == first
        snap = await h.snapshot()
        assert snap.fails == {7: 1}
        assert snap.state(7, 1_000_500) == "cooling"
        assert snap.state(7, 1_001_001) == "half-open"
        # The probe after the cooldown fails: twice as long.
        assert await h.record_failure(7, now_ms=1_002_000) == 1_004_000
        # Retry-After is honoured when it asks for longer.
        assert await h.record_failure(7, now_ms=1_003_000, retry_after=30) == 1_033_000
        await h.record_success(7)
        assert (await h.snapshot()).state(7, 1_003_000) == "healthy"
    finally:
        await _forget(redis, f"{namespace}_h1")


async def test_one_probe_at_a_time(redis: Redis, namespace: str) -> None:
    h = ChannelHealth(redis, Namespace(namespace + "_h2"))
    try:
        assert await h.claim_probe(9)
        assert not await h.claim_probe(9)
        assert await h.claim_probe(10)
    finally:
        await _forget(redis, f"{namespace}_h2")


async def test_moving_averages_fold_batches_of_outcomes(redis: Redis, namespace: str) -> None:
    h = ChannelHealth(redis, Namespace(namespace + "_h3"))
    try:
        # The first batch sets the averages outright.
        await h.record_outcomes({1: Outcomes(successes=4, failures=0, latency_ms_sum=400)})
        await h.record_outcomes({2: Outcomes(successes=1, failures=3, latency_ms_sum=50)})
        snap = await h.snapshot()
        assert snap.averages[1] == Averages(100.0, 0.0, 4)
        assert snap.averages[2] == Averages(50.0, 0.75, 4)
        # Later ones move them by 1 - (1 - alpha)^calls towards the batch's own figures.
        await h.record_outcomes({1: Outcomes(successes=10, failures=10, latency_ms_sum=3000)})
        moved = (await h.snapshot()).averages[1]
        latency_step = 1 - (1 - EWMA_ALPHA) ** 10
        error_step = 1 - (1 - EWMA_ALPHA) ** 20
        assert abs(moved.latency_ms - (100 + (300 - 100) * latency_step)) < 0.01
        assert abs(moved.error_rate - 0.5 * error_step) < 0.0001
        assert moved.calls == 24
        # Failures alone leave the latency where it was.
        await h.record_outcomes({2: Outcomes(failures=5)})
        assert (await h.snapshot()).averages[2].latency_ms == 50.0
        # Empty batches are nothing to write.
        await h.record_outcomes({})
        await h.record_outcomes({3: Outcomes()})
        assert 3 not in (await h.snapshot()).averages
    finally:
        await _forget(redis, f"{namespace}_h3")
