"""Billing's usage consumer notices that it is stuck and unsticks itself (unigate_billing.stall).

On the real JetStream: messages are in the stream and nothing takes them (the state a
stuck replicated consumer shows: pending, delivered unmoved). The consumer re-creates its pull
subscription, which then receives them; when it stays stuck it asks the consumer's leader to
step down, which a single server refuses (nothing to hand over to) and a cluster does
(``test_nats_cluster.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.conftest import NATS_URL
from unigate import bus
from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate_billing.consumer import UsageConsumer
from unigate_billing.ledger import Ledger
from unigate_billing.stall import StallWatch


@pytest.fixture
async def stream() -> AsyncIterator[tuple[NATS, Namespace]]:
    ns = Namespace("t" + secrets.token_hex(5))
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    await bus.ensure_usage_stream(js, ns)
    try:
        yield nc, ns
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(ns.usage_stream)
        await nc.close()


def stalls(remedy: str) -> float:
    value = REGISTRY.get_sample_value("unigate_billing_consumer_stalls_total", {"remedy": remedy})
    return value or 0.0


def consumer_on(
    stream: tuple[NATS, Namespace],
    pg: asyncpg.Pool,
    redis: Redis,
    *,
    ack_wait: float = 30.0,
    stall_after: float = 10.0,
) -> UsageConsumer:
    nc, ns = stream
    return UsageConsumer(
        nc.jetstream(),
        ns,
        Ledger(pg),
        QuotaStore(redis, ns),
        batch_size=10,
        ack_wait=ack_wait,
        nc=nc,
        stall_after=stall_after,
    )


async def consume_three_events(
    consumer: UsageConsumer,
    subscribe: Callable[[], Awaitable[Any]],
    failing_batches: int = 0,
) -> tuple[list[bytes], int]:
    """Publishes three events and runs the consumer's loop, subscribing with ``subscribe``,
    until they are handled; the first ``failing_batches`` batches fail before any ack (an ack
    lost with the connection). The events handled, and the batches tried."""
    handled: list[bytes] = []
    batches = 0

    async def handle(msgs: list[Msg]) -> None:
        nonlocal batches
        batches += 1
        if batches <= failing_batches:
            raise nats.errors.ConnectionClosedError
        for m in msgs:
            handled.append(m.data)
            await m.ack()

    consumer._subscribe = subscribe  # type: ignore[method-assign, assignment]
    consumer._handle = handle  # type: ignore[method-assign]
    for i in range(3):
        await consumer._js.publish(consumer._ns.usage_subject, f"event {i}".encode())
    running = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while len(handled) < 3:
            assert not running.done(), running
            assert asyncio.get_running_loop().time() < deadline, (batches, handled)
            await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await asyncio.wait_for(running, 5)
    return handled, batches


async def test_a_stuck_consumer_resubscribes_then_asks_for_a_step_down(
    stream: tuple[NATS, Namespace], pg: asyncpg.Pool, redis: Redis
) -> None:
    nc, ns = stream
    js = nc.jetstream()
    consumer = consumer_on(stream, pg, redis)
    sub = await consumer._subscribe()
    for i in range(3):
        await js.publish(ns.usage_subject, f"event {i}".encode())
    resubscribed, stepped_down = stalls("resubscribe"), stalls("step_down")

    watch = StallWatch(after=1.0, quiet_since=0.0)
    # The first look has nothing to compare with; the second finds nothing moved.
    assert await consumer._look(sub, watch, 1.0) is sub
    fresh = await consumer._look(sub, watch, 2.0)
    assert fresh is not sub
    assert stalls("resubscribe") == resubscribed + 1
    # The old subscription is gone; the new one receives what was waiting.
    msgs = await fresh.fetch(10, timeout=2.0)
    assert [m.data for m in msgs] == [b"event 0", b"event 1", b"event 2"]
    for m in msgs:
        await m.ack()

    # Stuck again and still stuck after the new subscription: the leader is asked to step
    # down. A single server has no one to hand over to and says so; the consumer goes on.
    for i in range(3, 5):
        await js.publish(ns.usage_subject, f"event {i}".encode())
    watch = StallWatch(after=1.0, quiet_since=0.0)
    assert await consumer._look(fresh, watch, 1.0) is fresh
    again = await consumer._look(fresh, watch, 2.0)
    assert again is not fresh
    assert await consumer._look(again, watch, 3.0) is again
    assert stalls("step_down") == stepped_down + 1
    with pytest.raises(APIError):
        await bus.step_down_consumer(nc, ns.usage_stream, ns.billing_consumer)
    assert len(await again.fetch(10, timeout=2.0)) == 2


async def test_a_quiet_consumer_with_nothing_waiting_is_left_alone(
    stream: tuple[NATS, Namespace], pg: asyncpg.Pool, redis: Redis
) -> None:
    consumer = consumer_on(stream, pg, redis)
    sub = await consumer._subscribe()
    resubscribed = stalls("resubscribe")
    watch = StallWatch(after=1.0, quiet_since=0.0)
    for now in (1.0, 2.0, 3.0):
        assert await consumer._look(sub, watch, now) is sub
    assert stalls("resubscribe") == resubscribed


async def test_the_consuming_loop_unsticks_itself_and_takes_what_was_waiting(
    stream: tuple[NATS, Namespace], pg: asyncpg.Pool, redis: Redis
) -> None:
    """The whole loop: a subscription whose pulls come back empty while messages wait (what a
    stuck replicated consumer looks like from billing) is replaced after two quiet looks, and
    the messages are then consumed."""
    nc, ns = stream
    js = nc.jetstream()
    consumer = consumer_on(stream, pg, redis, stall_after=0.3)
    real_subscribe = consumer._subscribe
    subscriptions: list[str] = []

    class Stuck:
        """Pulls answered with nothing, as the stuck consumer's were."""

        async def fetch(self, batch: int, timeout: float) -> list[Msg]:  # noqa: ASYNC109
            await asyncio.sleep(timeout)
            raise nats.errors.TimeoutError

        async def unsubscribe(self) -> None:
            subscriptions.append("stuck one dropped")

    async def subscribe() -> Any:
        if not subscriptions:
            subscriptions.append("stuck")
            await real_subscribe()  # the durable consumer exists, as billing made it
            return Stuck()
        subscriptions.append("fresh")
        return await real_subscribe()

    resubscribed = stalls("resubscribe")
    handled, _ = await consume_three_events(consumer, subscribe)
    assert handled == [b"event 0", b"event 1", b"event 2"]
    assert subscriptions == ["stuck", "fresh", "stuck one dropped"]
    assert stalls("resubscribe") == resubscribed + 1
    info = await js.consumer_info(ns.usage_stream, ns.billing_consumer)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_the_consuming_loop_outlives_a_failed_subscribe_and_a_failed_batch(
    stream: tuple[NATS, Namespace], pg: asyncpg.Pool, redis: Redis
) -> None:
    """What a cluster losing the node billing talks to does to the loop: the JetStream call
    that looks up or creates the durable consumer times out or is refused, and a batch's acks
    are lost. CI saw the first end the consumer, with billing up and the stream undrained; now
    the subscription is retried and the batch redelivered."""
    nc, ns = stream
    js = nc.jetstream()
    consumer = consumer_on(stream, pg, redis, ack_wait=1.0)
    real_subscribe = consumer._subscribe
    failures: list[Exception] = [
        nats.errors.TimeoutError(),
        APIError(code=503, description="JetStream system temporarily unavailable"),
    ]

    async def subscribe() -> Any:
        if failures:
            raise failures.pop(0)
        return await real_subscribe()

    assert not consumer.subscribed
    handled, batches = await consume_three_events(consumer, subscribe, failing_batches=1)
    assert not failures
    assert consumer.subscribed
    assert batches >= 2
    assert sorted(handled) == [b"event 0", b"event 1", b"event 2"]
    info = await js.consumer_info(ns.usage_stream, ns.billing_consumer)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_a_consumer_stopped_while_it_cannot_subscribe_ends(
    stream: tuple[NATS, Namespace], pg: asyncpg.Pool, redis: Redis
) -> None:
    consumer = consumer_on(stream, pg, redis, ack_wait=1.0)
    tries = 0
    retried = asyncio.Event()

    async def subscribe() -> Any:
        nonlocal tries
        tries += 1
        if tries == 2:
            retried.set()
        raise nats.errors.NoRespondersError

    consumer._subscribe = subscribe  # type: ignore[method-assign]
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(retried.wait(), 5)
    assert not running.done()
    # Billing's readiness reads this: a consumer that cannot subscribe consumes nothing.
    assert not consumer.subscribed
    consumer.stop()
    await asyncio.wait_for(running, 1)
