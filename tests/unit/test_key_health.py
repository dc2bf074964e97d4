"""Per-key health of multi-key channels: cooldowns in the real Redis, the relay's rotation
passing over cooling keys, and the relay's report of a refused key (cooled at once, taken
out of rotation by auth, the channel itself untouched)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from unigate.health import ChannelHealth
from unigate.keys import key_fingerprint
from unigate.namespace import Namespace
from unigate.v1 import auth_pb2, common_pb2, relay_pb2
from unigate_relay.channels import ChannelConfigs
from unigate_relay.health_reporter import HealthReporter


async def _forget(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


class FakeAuth:
    """Auth as the relay sees it: the channel's keys, and the DisableChannel reports."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.disabled: list[auth_pb2.DisableChannelRequest] = []

    async def GetChannel(self, request: Any, **_: Any) -> auth_pb2.Channel:
        return auth_pb2.Channel(id=request.channel_id, keys=self.keys, config_version=1)

    async def DisableChannel(self, request: Any, **_: Any) -> auth_pb2.DisableChannelResponse:
        self.disabled.append(request)
        return auth_pb2.DisableChannelResponse(key_disabled=True)


async def test_key_cooldowns_are_their_own(redis: Redis, namespace: str) -> None:
    h = ChannelHealth(redis, Namespace(namespace + "_k1"))
    try:
        assert await h.record_key_failure(7, "aa", now_ms=1_000_000) == 1_001_000
        assert await h.record_key_failure(7, "aa", now_ms=1_002_000) == 1_004_000  # doubles
        assert await h.record_key_failure(7, "bb", now_ms=1_000_000, retry_after=20) == 1_020_000
        snap = await h.snapshot()
        assert snap.key_cooling_until == {"7:aa": 1_004_000, "7:bb": 1_020_000}
        assert snap.fails == {} and snap.state(7, 1_000_500) == "healthy"  # the channel is fine
        await h.record_key_success(7, "aa")
        assert (await h.snapshot()).key_cooling_until == {"7:bb": 1_020_000}
    finally:
        await _forget(redis, f"{namespace}_k1")


async def test_rotation_passes_over_cooling_keys() -> None:
    configs = ChannelConfigs(FakeAuth(["k-a", "k-b", "k-c"]))  # type: ignore[arg-type]
    await configs.get(5, 1)
    cooling_b = {key_fingerprint("k-b")}
    picked = [configs.next_key(5, lambda fp: fp in cooling_b)[0] for _ in range(4)]
    assert picked == ["k-a", "k-c", "k-a", "k-c"]
    # Every key cooling: still one is used (a last resort, as cooling channels are).
    assert configs.next_key(5, lambda fp: True)[0] in {"k-a", "k-b", "k-c"}
    assert configs.key_count(5) == 3


async def test_a_refused_key_is_cooled_at_once_and_reported(redis: Redis, namespace: str) -> None:
    health = ChannelHealth(redis, Namespace(namespace + "_k2"))
    auth = FakeAuth(["k-a", "k-b"])
    reporter = HealthReporter(health, auth)  # type: ignore[arg-type]
    refused = relay_pb2.RelayError(
        error=common_pb2.ClientError(code="upstream_auth_failed", message="rejected"),
        upstream_status=401,
        fatal=True,
    )
    fp = key_fingerprint("k-b")
    try:
        reporter.observe(9, refused, 0.0, fp)
        assert reporter.key_cooling(9)(fp)  # before any Redis round trip
        assert not reporter.key_cooling(9)(key_fingerprint("k-a"))
        await reporter.drain()
        assert [(r.channel_id, r.key_fingerprint) for r in auth.disabled] == [(9, fp)]
        snap = await health.snapshot()
        assert f"9:{fp}" in snap.key_cooling_until
        assert 9 not in snap.fails  # the channel itself is not cooled down
        # A 5xx stays the channel's.
        reporter.observe(
            9,
            relay_pb2.RelayError(
                error=common_pb2.ClientError(code="upstream_error"), upstream_status=503
            ),
            0.0,
            key_fingerprint("k-a"),
        )
        await reporter.drain()
        await asyncio.sleep(0)
        assert (await health.snapshot()).fails == {9: 1}
    finally:
        await _forget(redis, f"{namespace}_k2")
