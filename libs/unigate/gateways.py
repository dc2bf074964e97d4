"""Gateways announce themselves in Redis, so that billing can tell a dead one from a slow one.

Each gateway process has a random instance id, sends it with every ``Authorize`` (auth writes
it into the reservation) and keeps ``<ns>:gw:<id>`` alive with a short TTL. A reservation
whose gateway's key has expired belongs to a process that was killed (or cut off from Redis
for longer than the TTL): nothing will ever publish its usage, so billing's sweeper settles it
within a minute instead of waiting for the reservation timeout. A gateway cut off but alive
still publishes later, and its real event corrects the swept row.
"""

from __future__ import annotations

import asyncio
import logging
import os

from redis.asyncio import Redis

from unigate.namespace import Namespace

log = logging.getLogger(__name__)


def new_gateway_id() -> str:
    return os.urandom(8).hex()


class GatewayRegistry:
    def __init__(self, redis: Redis, ns: Namespace) -> None:
        self._redis = redis
        self._ns = ns

    def _key(self, gateway_id: str) -> str:
        return self._ns.redis_key("gw", gateway_id)

    async def beat(self, gateway_id: str, ttl_seconds: float) -> None:
        await self._redis.set(self._key(gateway_id), 1, px=int(ttl_seconds * 1000))

    async def alive(self, gateway_ids: set[str]) -> set[str]:
        """Those of ``gateway_ids`` whose heartbeat has not expired (one round trip)."""
        ids = sorted(gateway_ids)
        if not ids:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for gid in ids:
            pipe.exists(self._key(gid))
        return {gid for gid, n in zip(ids, await pipe.execute(), strict=True) if n}

    async def beat_forever(self, gateway_id: str, ttl_seconds: float) -> None:
        """Renew the heartbeat four times per TTL, so that one lost beat does not expire it."""
        while True:
            await asyncio.sleep(ttl_seconds / 4)
            try:
                await self.beat(gateway_id, ttl_seconds)
            except Exception as exc:  # Redis away: keep trying; the sweeper may settle early
                log.warning("gateway heartbeat failed: %s", exc)
