"""Tells the rest of the system what the relay learned about a channel's health, off the
response path: failures cool the channel down (shared in Redis), fatal errors ask auth to
disable it, a success clears the record of a channel that had failures, and every outcome
feeds the channel's moving averages (batched: one Redis call per second per relay).

In a channel of several keys, a failure that belongs to the key (the provider refused it, or
rate-limited it) cools that key down instead of the channel, and a refusal asks auth to take
that key out of rotation: the channel's other keys keep serving."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from unigate.health import BASE_COOLDOWN_SECONDS, ChannelHealth, Outcomes
from unigate.v1 import auth_pb2, auth_pb2_grpc, relay_pb2
from unigate_relay.providers.base import is_channel_failure

log = logging.getLogger(__name__)


def is_key_failure(error: relay_pb2.RelayError) -> bool:
    """A failure that belongs to the key used, not to the channel: the provider refused the
    key (or its account) for good, or rate-limited it."""
    return error.fatal or error.upstream_status == 429


class HealthReporter:
    def __init__(self, health: ChannelHealth, auth: auth_pb2_grpc.AuthServiceStub) -> None:
        self._health = health
        self._auth = auth
        # Channels with failures on record (any relay's), refreshed in the background so a
        # success costs a Redis write only when there is something to clear.
        self._flagged: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: dict[int, Outcomes] = {}
        # Cooldown ends (unix ms) of single keys, "<channel>:<fingerprint>" (all relays').
        self._key_cooling: dict[str, int] = {}

    def key_cooling(self, channel_id: int) -> Callable[[str], bool]:
        """Whether a key (by fingerprint) of the channel is cooling down right now."""
        now_ms = int(time.time() * 1000)
        prefix = f"{channel_id}:"
        return lambda fp: self._key_cooling.get(prefix + fp, 0) > now_ms

    def observe(
        self,
        channel_id: int,
        error: relay_pb2.RelayError | None,
        latency_ms: float = 0.0,
        key_fp: str = "",
    ) -> None:
        """Take note of one call's outcome; ``latency_ms`` is how long the provider took to
        answer (to its first token, for a stream); ``key_fp`` names the key used when the
        channel has several."""
        if key_fp and error is not None and is_key_failure(error):
            name = f"{channel_id}:{key_fp}"
            # Out of rotation here at once; the shared cooldown follows from Redis.
            until = int((time.time() + max(BASE_COOLDOWN_SECONDS, error.retry_after)) * 1000)
            self._key_cooling[name] = max(self._key_cooling.get(name, 0), until)
            self._spawn(self._key_failed(channel_id, key_fp, error))
            return
        if error is None and key_fp and f"{channel_id}:{key_fp}" in self._key_cooling:
            self._key_cooling.pop(f"{channel_id}:{key_fp}", None)
            self._spawn(self._health.record_key_success(channel_id, key_fp))
        if error is None:
            if channel_id in self._flagged:
                # Recovered: its averages start afresh in Redis, so the failures still
                # waiting here for the next report must not be folded in after the reset.
                self._flagged.discard(channel_id)
                self._outcomes.pop(channel_id, None)
                self._spawn(self._health.record_success(channel_id))
            seen = self._outcomes.setdefault(channel_id, Outcomes())
            seen.successes += 1
            seen.latency_ms_sum += latency_ms
        elif is_channel_failure(error):
            self._outcomes.setdefault(channel_id, Outcomes()).failures += 1
            self._flagged.add(channel_id)
            self._spawn(self._failed(channel_id, error))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _failed(self, channel_id: int, error: relay_pb2.RelayError) -> None:
        try:
            until = await self._health.record_failure(
                channel_id, int(time.time() * 1000), error.retry_after
            )
            log.warning(
                "channel %d failed (%s); cooling down for %.1fs",
                channel_id,
                error.error.code,
                until / 1000 - time.time(),
            )
            if error.fatal:
                done = await self._auth.DisableChannel(
                    auth_pb2.DisableChannelRequest(
                        channel_id=channel_id, reason=f"{error.error.code}: {error.error.message}"
                    ),
                    timeout=5,
                )
                if done.disabled:
                    log.error("channel %d disabled: %s", channel_id, error.error.code)
        except (grpc.aio.AioRpcError, OSError, ConnectionError) as exc:
            log.warning("could not report channel %d health: %s", channel_id, exc)
        except Exception:
            log.exception("could not report channel %d health", channel_id)

    async def _key_failed(self, channel_id: int, key_fp: str, error: relay_pb2.RelayError) -> None:
        try:
            until = await self._health.record_key_failure(
                channel_id, key_fp, int(time.time() * 1000), error.retry_after
            )
            self._key_cooling[f"{channel_id}:{key_fp}"] = until
            log.warning(
                "channel %d key %s failed (%s); cooling it down for %.1fs",
                channel_id,
                key_fp,
                error.error.code,
                until / 1000 - time.time(),
            )
            if error.fatal:
                done = await self._auth.DisableChannel(
                    auth_pb2.DisableChannelRequest(
                        channel_id=channel_id,
                        reason=f"{error.error.code}: {error.error.message}",
                        key_fingerprint=key_fp,
                    ),
                    timeout=5,
                )
                if done.key_disabled:
                    log.error(
                        "channel %d key %s disabled: %s", channel_id, key_fp, error.error.code
                    )
        except (grpc.aio.AioRpcError, OSError, ConnectionError) as exc:
            log.warning("could not report channel %d key health: %s", channel_id, exc)
        except Exception:
            log.exception("could not report channel %d key health", channel_id)

    async def refresh_forever(self, interval: float = 1.0) -> None:
        while True:
            try:
                snapshot = await self._health.snapshot()
                self._flagged = set(snapshot.fails)
                self._key_cooling = dict(snapshot.key_cooling_until)
            except Exception as exc:
                log.warning("could not read channel health: %s", exc)
            await self.flush_outcomes()
            await asyncio.sleep(interval)

    async def drain(self) -> None:
        """At shutdown: report the last outcomes and wait for the reports under way."""
        await self.flush_outcomes()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def flush_outcomes(self) -> None:
        """Report the outcomes seen since the last flush (lost, not retried, on a Redis
        error: the averages only steer traffic, they account for nothing)."""
        batch, self._outcomes = self._outcomes, {}
        try:
            await self._health.record_outcomes(batch)
        except Exception as exc:
            log.warning("could not record channel outcomes: %s", exc)
