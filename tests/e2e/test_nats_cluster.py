"""The usage ledger on a three-node JetStream cluster.

The stack is given the cluster as a URL set (``NATS_URL=nats://a,nats://b,nats://c``) and keeps
the usage stream in three copies (``USAGE_STREAM_REPLICAS=3``). Under load, the node leading
the stream is killed (SIGKILL, as a lost machine): the stream and billing's durable consumer
elect new leaders, gateways and billing connected to that node move to another, publishes
whose acks were lost are retried (JetStream drops the duplicates by ``Nats-Msg-Id``). Then the
node comes back and catches up. Every request served must be in the ledger exactly once, every
row must have been published and answered, balances must equal the ledger, and the audit must
find no drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator

import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError, NotFoundError

from tests.e2e.own_servers import OwnNatsCluster
from tests.e2e.test_balance_truth import Load, assert_ledger_exact
from tests.e2e.test_parallel_billing import LedgerEnv, assert_audit_clean, ledger_env
from unigate import bus
from unigate.namespace import Namespace
from unigate_cli.devstack import free_port


# One per test: a cluster whose node was just killed and brought back may still answer
# from a stale view for a moment (seen: "stream not found" just after a create).
@pytest.fixture
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNatsCluster]:
    cluster = OwnNatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    cluster.start_all()
    try:
        yield cluster
    finally:
        cluster.stop_all()


async def stream_leader(env: LedgerEnv, within: float = 60.0) -> str:
    """The server leading the usage stream (waiting out an election)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            info = await env.js.stream_info(env.ns.usage_stream)
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        except Exception:
            pass  # no leader yet, or the client is moving to another server
        assert loop.time() < deadline, "the usage stream has no leader"
        await asyncio.sleep(0.2)


def served(load: Load) -> int:
    return sum(1 for _, a in load.answers if a.status == 200)


async def test_ledger_is_exact_through_the_loss_of_the_stream_leader(
    tmp_path_factory: pytest.TempPathFactory, nats_cluster: OwnNatsCluster
) -> None:
    await nats_cluster.wait_jetstream()
    async with ledger_env(
        tmp_path_factory.mktemp("nats-cluster-stack"),
        nats_url=nats_cluster.url,
        USAGE_STREAM_REPLICAS="3",
    ) as env:
        info = await env.js.stream_info(env.ns.usage_stream)
        assert info.config.num_replicas == 3
        leader = await stream_leader(env)
        token = await env.new_token()
        load = Load(token.key, workers=8)
        thread = load.run(env)
        try:
            await load.until(60)
            lost = nats_cluster.index_of(leader)
            nats_cluster.kill(lost)
            killed_at = asyncio.get_running_loop().time()
            at_kill = served(load)
            # Requests never wait on NATS: they go on being served while the stream elects a
            # new leader, and their events are published to it.
            await load.until(at_kill + 150, within=180)
            new_leader = await stream_leader(env)
            assert new_leader != leader
            # Figures for the record (pytest -s shows them).
            print(
                f"killed {leader} after {at_kill} served; {served(load) - at_kill} served since, "
                f"{asyncio.get_running_loop().time() - killed_at:.1f} s; new leader {new_leader}"
            )
            nats_cluster.start(lost)
            await nats_cluster.wait_jetstream()
            await load.until(served(load) + 60, within=180)
        finally:
            load.stop.set()
            await asyncio.to_thread(thread.join, 60)
        answers = [a for _, a in load.answers]
        assert not load.errors, load.errors[:3]
        assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]

        charged = await assert_ledger_exact(env, token.id, answers)
        assert charged > 0
        # Nothing published twice reached the ledger twice, nothing served is missing.
        rows = await env.pg.fetchval(
            "SELECT count(*) FROM logs WHERE type = 2 AND token_id = $1", token.id
        )
        assert rows == len(answers)
        # The node that came back holds a current copy again.
        info = await env.js.stream_info(env.ns.usage_stream)
        assert info.cluster is not None
        peers = {p.name: p for p in info.cluster.replicas or []}
        assert len(peers) + 1 == 3
        assert_audit_clean(env)


async def test_an_existing_stream_is_moved_to_the_configured_replicas(
    nats_cluster: OwnNatsCluster,
) -> None:
    await nats_cluster.wait_jetstream()
    ns = Namespace("t" + secrets.token_hex(5))
    # One seed that is not a server at all: the client goes on to the next member.
    nc = await bus.connect(f"nats://127.0.0.1:{free_port()}," + nats_cluster.url, "test")
    try:
        js = nc.jetstream(timeout=30)
        await bus.ensure_usage_stream(js, ns)
        assert (await js.stream_info(ns.usage_stream)).config.num_replicas == 1
        await bus.ensure_usage_stream(js, ns, bus.StreamPlacement(replicas=3))
        info = await js.stream_info(ns.usage_stream)
        assert info.config.num_replicas == 3
        # Idempotent, and safe to race: several services start at once.
        await asyncio.gather(
            *(bus.ensure_usage_stream(js, ns, bus.StreamPlacement(replicas=3)) for _ in range(4))
        )
        assert (await js.stream_info(ns.usage_stream)).config.num_replicas == 3
        # Not deleted: nats-server 2.9 leaves a delete right after a scale-up unanswered
        # (seen here); the cluster is the test's own and goes with its stores.
    finally:
        await nc.close()


async def test_a_stream_asked_of_a_cluster_still_forming_waits_for_its_members(
    nats_cluster: OwnNatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Services start beside the cluster: three copies asked of a cluster with one member
    not yet joined are placed once it joins, not refused (seen in CI: "no suitable peers for
    placement" just after the cluster answered)."""
    nats_cluster.kill(2)
    await nats_cluster.wait_jetstream()
    ns = Namespace("t" + secrets.token_hex(5))
    nc = await bus.connect(nats_cluster.url, "test")
    try:
        js = nc.jetstream(timeout=10)
        with caplog.at_level("WARNING", logger="unigate.bus"):
            placing = asyncio.create_task(
                bus.ensure_usage_stream(js, ns, bus.StreamPlacement(replicas=3))
            )
            await asyncio.sleep(3)
            assert not placing.done(), placing
            assert "not placed yet" in caplog.text
            with pytest.raises(NotFoundError):
                await js.stream_info(ns.usage_stream)
            nats_cluster.start(2)
            await asyncio.wait_for(placing, 90)
        info = await js.stream_info(ns.usage_stream)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
    finally:
        await nc.close()


async def test_a_stream_the_cluster_cannot_hold_is_refused_at_once(
    nats_cluster: OwnNatsCluster,
) -> None:
    """Only a cluster still forming is waited for: a configuration JetStream refuses for
    good (more copies than it allows) fails the start at once."""
    await nats_cluster.wait_jetstream()
    nc = await bus.connect(nats_cluster.url, "test")
    try:
        js = nc.jetstream(timeout=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(APIError) as refused:
            await bus.ensure_usage_stream(
                js, Namespace("t" + secrets.token_hex(5)), bus.StreamPlacement(replicas=6)
            )
        assert "maximum replicas is 5" in str(refused.value)
        assert loop.time() - started < 10
    finally:
        await nc.close()


async def test_a_consumer_leader_steps_down_on_request(nats_cluster: OwnNatsCluster) -> None:
    """Billing's last remedy for a stuck consumer (``unigate_billing.stall``) hands the
    consumer's leadership to another replica."""
    await nats_cluster.wait_jetstream()
    ns = Namespace("t" + secrets.token_hex(5))
    nc = await bus.connect(nats_cluster.url, "test")
    try:
        js = nc.jetstream(timeout=30)
        await bus.ensure_usage_stream(js, ns, bus.StreamPlacement(replicas=3))
        config = ConsumerConfig(durable_name=ns.billing_consumer, ack_policy=AckPolicy.EXPLICIT)
        await js.add_consumer(ns.usage_stream, config)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        leader = None
        while leader is None:
            assert loop.time() < deadline, "the consumer has no leader"
            info = await js.consumer_info(ns.usage_stream, ns.billing_consumer)
            leader = info.cluster.leader if info.cluster else None
            await asyncio.sleep(0.1)
        await bus.step_down_consumer(nc, ns.usage_stream, ns.billing_consumer)
        while True:
            assert loop.time() < deadline, "the consumer kept its leader"
            # While the replicas elect, nobody answers: ask again (seen: a leader within 3 s).
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.consumer_info(ns.usage_stream, ns.billing_consumer, timeout=2)
                if info.cluster and info.cluster.leader not in (None, leader):
                    break
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def test_nats_url_lists_servers() -> None:
    assert bus.server_urls(" nats://a:4222, nats://b:4222 ,") == ["nats://a:4222", "nats://b:4222"]
    with pytest.raises(ValueError, match="no server"):
        bus.server_urls(" , ")
