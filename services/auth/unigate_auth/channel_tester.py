"""Brings auto-disabled channels back: one auth instance (holding a Redis lease) sends each a
minimal chat request through its relay every ``CHANNEL_TEST_FREQUENCY`` seconds and
re-enables those that answer."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

import grpc
import orjson

from unigate.channel_types import channel_type
from unigate.quota import QuotaStore
from unigate.settings import relay_for
from unigate.v1 import relay_pb2, relay_pb2_grpc
from unigate_auth.admin.channels import ChannelUnderTest
from unigate_auth.store import AuthStore

log = logging.getLogger(__name__)

Notify = Callable[[str, list[int]], Awaitable[None]]


class ChannelTester:
    def __init__(
        self,
        store: AuthStore,
        relays: dict[str, relay_pb2_grpc.RelayServiceStub],
        quota: QuotaStore,
        notify: Notify,
        *,
        frequency_seconds: float,
    ) -> None:
        self._store = store
        self._relays = relays
        self._quota = quota
        self._notify = notify
        self._frequency = frequency_seconds
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._frequency)
            try:
                lease_ms = int(self._frequency * 2000) + 1000
                if await self._quota.try_lead("channel-tester", self._owner, lease_ms):
                    await self.test_disabled()
            except Exception:
                log.exception("channel test round failed")

    async def test_disabled(self) -> list[int]:
        """Test every auto-disabled channel once; returns those re-enabled."""
        enabled = []
        for channel in await self._store.channels.auto_disabled():
            response_ms = await self.test(channel)
            now = int(time.time())
            if response_ms is None:
                await self._store.channels.record_test(channel.id, 0, now)
            elif await self._store.channels.enable(channel.id, response_ms, now):
                log.info("channel %d re-enabled after a passing test", channel.id)
                enabled.append(channel.id)
        if enabled:
            await self._notify("channel", enabled)
        return enabled

    async def test(self, channel: ChannelUnderTest) -> int | None:
        """Milliseconds a minimal request took, or None if it failed."""
        ct = channel_type(channel.type)
        stub = relay_for(self._relays, ct.family) if ct else None
        if stub is None:
            return None
        body = orjson.dumps(
            {
                "model": channel.model,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1,
            }
        )
        started = time.perf_counter()
        try:
            result = await stub.Call(
                relay_pb2.RelayRequest(
                    request_id=f"channel-test-{channel.id}-{int(time.time())}",
                    endpoint="chat.completions",
                    channel_id=channel.id,
                    channel_type=channel.type,
                    config_version=channel.config_version,
                    upstream_model=channel.upstream_model,
                    model=channel.model,
                    body=body,
                ),
                timeout=30,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("channel %d test could not reach its relay: %s", channel.id, exc.code())
            return None
        if result.HasField("error"):
            log.info("channel %d still failing: %s", channel.id, result.error.error.code)
            return None
        return int((time.perf_counter() - started) * 1000)
