"""Channel monitoring: one auth instance at a time (holding a Redis lease per duty) sends
channels a minimal chat request through their relay and acts on the answer.

- Every ``CHANNEL_MONITOR_FREQUENCY`` seconds, every enabled channel is tested (One API's
  periodic test of all channels); one that fails, or answers slower than the
  ``ChannelDisableThreshold`` option (seconds), is disabled (status 3) when
  ``AutomaticDisableChannelEnabled`` allows.
- Every ``CHANNEL_TEST_FREQUENCY`` seconds, every auto-disabled channel is tested; one that
  passes within the threshold is re-enabled when ``AutomaticEnableChannelEnabled`` allows.

Each test's outcome (when, how long, what failed) is written on the channel's row; every
disable and re-enable is a system log row and a notification (``unigate.alerts``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import grpc
import orjson

from unigate.alerts import Alert, Notifier
from unigate.channel_types import channel_type
from unigate.quota import QuotaStore
from unigate.settings import relay_for
from unigate.v1 import relay_pb2, relay_pb2_grpc
from unigate_auth.admin.channels import ChannelUnderTest
from unigate_auth.store import AuthStore

log = logging.getLogger(__name__)

Notify = Callable[[str, list[int]], Awaitable[None]]

# One API's option names. One API ships both switches off; unigate has always disabled a
# channel whose key the provider rejects and re-enabled it once a test passes, so here they
# default on (an operator moving over who wants One API's behaviour sets them to false).
MONITOR_OPTION_DEFAULTS: dict[str, str] = {
    "ChannelDisableThreshold": "5",
    "AutomaticDisableChannelEnabled": "true",
    "AutomaticEnableChannelEnabled": "true",
}
_TESTS_AT_ONCE = 4
# Relay answers that say unigate, not the provider, failed the test.
_OUR_FAILURES = frozenset({"relay_failed", "relay_misrouted", "channel_config_unavailable"})
_TRUE = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    threshold_ms: int  # 0: no response-time limit
    auto_disable: bool
    auto_enable: bool

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> MonitorOptions:
        def get(name: str) -> str:
            value = options.get(name, "").strip()
            return value or MONITOR_OPTION_DEFAULTS[name]

        try:
            threshold = max(float(get("ChannelDisableThreshold")), 0.0)
        except ValueError:
            log.warning("option ChannelDisableThreshold is not a number; using the default")
            threshold = float(MONITOR_OPTION_DEFAULTS["ChannelDisableThreshold"])
        return cls(
            threshold_ms=int(threshold * 1000),
            auto_disable=get("AutomaticDisableChannelEnabled").lower() in _TRUE,
            auto_enable=get("AutomaticEnableChannelEnabled").lower() in _TRUE,
        )


@dataclass(frozen=True, slots=True)
class Probe:
    """A test's outcome: milliseconds the answer took, and what failed (empty: passed)."""

    ms: int
    error: str = ""
    # The failure was ours (no relay for the type, relay unreachable), not the channel's:
    # recorded, never a reason to disable the channel (a relay outage would disable all).
    ours: bool = False

    @property
    def passed(self) -> bool:
        return not self.error


class ChannelTester:
    def __init__(
        self,
        store: AuthStore,
        relays: dict[str, relay_pb2_grpc.RelayServiceStub],
        quota: QuotaStore,
        notify: Notify,
        alerts: Notifier | None = None,
        *,
        frequency_seconds: float,
        monitor_frequency_seconds: float = 0.0,
    ) -> None:
        self._store = store
        self._relays = relays
        self._quota = quota
        self._notify = notify
        self._alerts = alerts
        self._frequency = frequency_seconds
        self._monitor_frequency = monitor_frequency_seconds
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    async def run(self) -> None:
        """Retest auto-disabled channels forever (``CHANNEL_TEST_FREQUENCY``)."""
        await self._every(self._frequency, "channel-tester", self.test_disabled)

    async def run_monitor(self) -> None:
        """Test every enabled channel forever (``CHANNEL_MONITOR_FREQUENCY``)."""
        await self._every(self._monitor_frequency, "channel-monitor", self.test_enabled)

    async def _every(
        self, period: float, role: str, duty: Callable[[], Awaitable[list[int]]]
    ) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                # The lease outlives a round, so the next round stays with the same instance.
                lease_ms = int(period * 2000) + 1000
                if await self._quota.try_lead(role, self._owner, lease_ms):
                    await duty()
            except Exception:
                log.exception("channel test round (%s) failed", role)

    async def _options(self) -> MonitorOptions:
        return MonitorOptions.from_options(await self._store.options())

    async def test_disabled(self) -> list[int]:
        """Test every auto-disabled channel once; returns those re-enabled."""
        opts = await self._options()
        channels = await self._store.channels.auto_disabled()
        probes = await self._probe_all(channels, opts)
        enabled = []
        for channel, probe in zip(channels, probes, strict=True):
            now = int(time.time())
            if not probe.passed or not opts.auto_enable:
                await self._store.channels.record_test(channel.id, probe.ms, now, probe.error)
            elif await self._store.channels.enable(channel.id, probe.ms, now):
                log.info("channel %d re-enabled after a passing test", channel.id)
                enabled.append(channel.id)
                self._alert(
                    "channel_enabled",
                    channel,
                    f"Channel #{channel.id} ({channel.name}) re-enabled",
                    f"Its test passed in {probe.ms} ms; it serves requests again.",
                )
        if enabled:
            await self._notify("channel", enabled)
        return enabled

    async def test_enabled(self) -> list[int]:
        """Test every enabled channel once; returns those disabled."""
        opts = await self._options()
        channels = await self._store.channels.enabled_for_test()
        probes = await self._probe_all(channels, opts)
        disabled = []
        for channel, probe in zip(channels, probes, strict=True):
            now = int(time.time())
            await self._store.channels.record_test(channel.id, probe.ms, now, probe.error)
            if probe.passed or probe.ours or not opts.auto_disable:
                continue
            reason = f"periodic test failed: {probe.error}"
            if await self._store.channels.disable(channel.id, reason, now):
                log.error("channel %d disabled by the periodic test: %s", channel.id, probe.error)
                disabled.append(channel.id)
                self._alert(
                    "channel_disabled",
                    channel,
                    f"Channel #{channel.id} ({channel.name}) disabled",
                    f"The periodic test failed: {probe.error}",
                )
        if disabled:
            await self._notify("channel", disabled)
        return disabled

    def _alert(self, event: str, channel: ChannelUnderTest, title: str, text: str) -> None:
        if self._alerts is not None:
            self._alerts.send(
                Alert(event, title, text, {"channel_id": channel.id, "channel": channel.name})
            )

    async def _probe_all(
        self, channels: list[ChannelUnderTest], opts: MonitorOptions
    ) -> list[Probe]:
        gate = asyncio.Semaphore(_TESTS_AT_ONCE)

        async def one(channel: ChannelUnderTest) -> Probe:
            async with gate:
                # A multi-key channel fails only if every key does: the relay itself tries
                # the next key when one is refused (server.py), and deals with that key.
                probe = await self.probe(channel)
            if probe.passed and opts.threshold_ms and probe.ms > opts.threshold_ms:
                return Probe(
                    probe.ms,
                    f"answered in {probe.ms} ms, over the {opts.threshold_ms} ms threshold",
                )
            return probe

        return list(await asyncio.gather(*map(one, channels)))

    async def test(self, channel: ChannelUnderTest) -> int | None:
        """Milliseconds a minimal request took, or None if it failed."""
        probe = await self.probe(channel)
        return probe.ms if probe.passed else None

    async def probe(self, channel: ChannelUnderTest) -> Probe:
        """Send the channel one minimal request through its relay."""
        ct = channel_type(channel.type)
        stub = relay_for(self._relays, ct.family) if ct else None
        if stub is None:
            return Probe(0, f"no relay serves channel type {channel.type}", ours=True)
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
            return Probe(0, f"relay unreachable: {exc.code().name}", ours=True)
        ms = int((time.perf_counter() - started) * 1000)
        if result.HasField("error"):
            err = result.error.error
            log.info("channel %d test failed: %s", channel.id, err.code)
            return Probe(
                ms,
                f"{err.code or err.http_status}: {err.message}"[:300],
                ours=err.code in _OUR_FAILURES,
            )
        return Probe(ms)
