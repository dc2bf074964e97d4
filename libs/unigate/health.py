"""Channel health shared by every relay and auth instance, in Redis.

A relay that sees a channel fail (5xx, 429, timeout, unreachable) cools it down for a period
that doubles with each consecutive failure (at least what the provider's Retry-After asked).
Auth leaves cooling channels at the back of the candidate list. When a cooldown ends the
channel is half-open: one request at a time may probe it; a success clears its record.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from unigate.namespace import Namespace

BASE_COOLDOWN_SECONDS = 1.0
MAX_COOLDOWN_SECONDS = 300.0
PROBE_LEASE_MS = 3_000

_FAIL = """
-- Failures while a cooldown runs (requests already in flight when it began) do not
-- escalate it; only a failed probe after it ends does.
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if current > tonumber(ARGV[2]) then
  local wanted = tonumber(ARGV[2]) + math.floor(tonumber(ARGV[5]) * 1000)
  if wanted > current then
    redis.call('HSET', KEYS[2], ARGV[1], wanted)
    return wanted
  end
  return current
end
local fails = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local cool = math.min(tonumber(ARGV[3]) * 2 ^ (fails - 1), tonumber(ARGV[4]))
cool = math.max(cool, tonumber(ARGV[5]))
local until_ms = tonumber(ARGV[2]) + math.floor(cool * 1000)
redis.call('HSET', KEYS[2], ARGV[1], until_ms)
return until_ms
"""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Consecutive failures and cooldown ends (unix ms) by channel id."""

    fails: dict[int, int]
    cooling_until: dict[int, int]

    def state(self, channel_id: int, now_ms: int) -> str:
        """ "healthy", "cooling" or "half-open"."""
        if self.cooling_until.get(channel_id, 0) > now_ms:
            return "cooling"
        return "half-open" if self.fails.get(channel_id) else "healthy"


class ChannelHealth:
    def __init__(self, redis: Redis, ns: Namespace) -> None:
        self._redis = redis
        self._ns = ns
        self._fails_key = ns.redis_key("health", "fails")
        self._cooling_key = ns.redis_key("health", "cooling")
        self._fail = redis.register_script(_FAIL)

    async def record_failure(self, channel_id: int, now_ms: int, retry_after: float = 0) -> int:
        """Count a failure and cool the channel down; returns when the cooldown ends (ms)."""
        return int(
            await self._fail(
                keys=[self._fails_key, self._cooling_key],
                args=[
                    channel_id,
                    now_ms,
                    BASE_COOLDOWN_SECONDS,
                    MAX_COOLDOWN_SECONDS,
                    max(retry_after, 0.0),
                ],
            )
        )

    async def record_success(self, channel_id: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._fails_key, str(channel_id))
        pipe.hdel(self._cooling_key, str(channel_id))
        await pipe.execute()

    async def snapshot(self) -> HealthSnapshot:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._fails_key)
        pipe.hgetall(self._cooling_key)
        fails, cooling = await pipe.execute()
        return HealthSnapshot(
            fails={int(k): int(v) for k, v in fails.items()},
            cooling_until={int(k): int(v) for k, v in cooling.items()},
        )

    async def claim_probe(self, channel_id: int) -> bool:
        """Whether this caller may send the one probe request to a half-open channel."""
        key = self._ns.redis_key("health", "probe", channel_id)
        return bool(await self._redis.set(key, "1", nx=True, px=PROBE_LEASE_MS))
