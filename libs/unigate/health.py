"""Channel health shared by every relay and auth instance, in Redis.

A relay that sees a channel fail (5xx, 429, timeout, unreachable) cools it down for a period
that doubles with each consecutive failure (at least what the provider's Retry-After asked).
Auth leaves cooling channels at the back of the candidate list. When a cooldown ends the
channel is half-open: one request at a time may probe it; a success clears its record.

A multi-key channel's failures that belong to one key (the provider refused the key, or
rate-limited it: 429) cool that key down instead, with the same doubling, in hashes of their
own keyed ``<channel>:<key fingerprint>``; relays rotate past cooling keys while any other
is usable, and the channel keeps serving.

Besides, every relay folds the outcomes it saw into an exponentially weighted moving average
of each channel's latency and error rate, once a second per relay (never per request); auth
gives a channel whose averages are far worse than its tier's proportionally less traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

#: How much one call moves a channel's averages (a call 20 calls ago weighs about a third).
EWMA_ALPHA = 0.05

_OBSERVE = """
-- ARGV[1]: alpha; then per channel: id, successes, failures, latency sum of the successes (ms).
-- Each call moves the averages by alpha, so a batch of n moves them by 1 - (1 - alpha)^n.
-- The third field counts the calls the averages summarize (capped), so readers can tell a
-- figure from one call from a trend.
local keep = 1 - tonumber(ARGV[1])
for i = 2, #ARGV, 4 do
  local ok, failed, lat_sum = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local calls = ok + failed
  local lat, err = 0, failed / calls
  if ok > 0 then lat = lat_sum / ok end
  local n = calls
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then
    local old_lat, old_err, old_n = string.match(cur, '^(%S+) (%S+) ?(%S*)$')
    old_lat, old_err = tonumber(old_lat), tonumber(old_err)
    n = math.min((tonumber(old_n) or 0) + calls, 1000000)
    local d = keep ^ calls
    err = old_err * d + err * (1 - d)
    if ok > 0 then
      local dl = keep ^ ok
      lat = old_lat * dl + lat * (1 - dl)
    else
      lat = old_lat
    end
  end
  redis.call('HSET', KEYS[1], ARGV[i], string.format('%.3f %.5f %d', lat, err, n))
end
return 1
"""


@dataclass(slots=True)
class Outcomes:
    """What one relay saw of one channel since its last report."""

    successes: int = 0
    failures: int = 0
    latency_ms_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class Averages:
    """A channel's moving averages: latency of its successful calls (ms) and error rate,
    and how many calls (capped at a million) they summarize."""

    latency_ms: float
    error_rate: float
    calls: int


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Consecutive failures and cooldown ends (unix ms) by channel id, and the moving
    averages of channels that have any."""

    fails: dict[int, int]
    cooling_until: dict[int, int]
    averages: dict[int, Averages] = field(default_factory=dict)
    # Cooldown ends (unix ms) of single keys, by "<channel id>:<key fingerprint>".
    key_cooling_until: dict[str, int] = field(default_factory=dict)

    def state(self, channel_id: int, now_ms: int) -> str:
        """ "healthy", "cooling" or "half-open"."""
        if self.cooling_until.get(channel_id, 0) > now_ms:
            return "cooling"
        return "half-open" if self.fails.get(channel_id) else "healthy"


class ChannelHealth:
    def __init__(self, redis: Redis, ns: Namespace) -> None:
        self._redis = redis
        # Relays (no database) write these, so they are not bound to one (see Namespace).
        ns = ns.unbound
        self._ns = ns
        # One hash tag for the health hashes: the failure scripts write several of them, which
        # Redis Cluster allows only within one slot.
        self._fails_key = ns.redis_key("{health}", "fails")
        self._cooling_key = ns.redis_key("{health}", "cooling")
        self._averages_key = ns.redis_key("{health}", "ewma")
        self._key_fails_key = ns.redis_key("{health}", "keyfails")
        self._key_cooling_key = ns.redis_key("{health}", "keycooling")
        self._fail = redis.register_script(_FAIL)
        self._observe = redis.register_script(_OBSERVE)

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

    async def record_key_failure(
        self, channel_id: int, fingerprint: str, now_ms: int, retry_after: float = 0
    ) -> int:
        """Count a failure of one key of a channel and cool that key down; returns when its
        cooldown ends (ms)."""
        return int(
            await self._fail(
                keys=[self._key_fails_key, self._key_cooling_key],
                args=[
                    f"{channel_id}:{fingerprint}",
                    now_ms,
                    BASE_COOLDOWN_SECONDS,
                    MAX_COOLDOWN_SECONDS,
                    max(retry_after, 0.0),
                ],
            )
        )

    async def record_key_success(self, channel_id: int, fingerprint: str) -> None:
        field_name = f"{channel_id}:{fingerprint}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._key_fails_key, field_name)
        pipe.hdel(self._key_cooling_key, field_name)
        await pipe.execute()

    async def record_success(self, channel_id: int) -> None:
        """A channel with failures on record answered: it has recovered. Its moving averages
        start afresh too, or the errors of its outage would keep its traffic down long after
        the probe showed it healthy."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._fails_key, str(channel_id))
        pipe.hdel(self._cooling_key, str(channel_id))
        pipe.hdel(self._averages_key, str(channel_id))
        await pipe.execute()

    async def record_outcomes(self, outcomes: dict[int, Outcomes]) -> None:
        """Fold one relay's batch of outcomes into the channels' moving averages."""
        args: list[float | int] = [EWMA_ALPHA]
        for channel_id, o in outcomes.items():
            if o.successes + o.failures:
                args += [channel_id, o.successes, o.failures, round(o.latency_ms_sum, 3)]
        if len(args) > 1:
            await self._observe(keys=[self._averages_key], args=args)

    async def snapshot(self) -> HealthSnapshot:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._fails_key)
        pipe.hgetall(self._cooling_key)
        pipe.hgetall(self._averages_key)
        pipe.hgetall(self._key_cooling_key)
        fails, cooling, averages, key_cooling = await pipe.execute()
        parsed: dict[int, Averages] = {}
        for k, v in averages.items():
            latency, error_rate, *calls = v.split()
            parsed[int(k)] = Averages(
                float(latency), float(error_rate), int(calls[0]) if calls else 0
            )
        return HealthSnapshot(
            fails={int(k): int(v) for k, v in fails.items()},
            cooling_until={int(k): int(v) for k, v in cooling.items()},
            averages=parsed,
            key_cooling_until={
                (k.decode() if isinstance(k, bytes) else str(k)): int(v)
                for k, v in key_cooling.items()
            },
        )

    async def claim_probe(self, channel_id: int) -> bool:
        """Whether this caller may send the one probe request to a half-open channel."""
        key = self._ns.redis_key("health", "probe", channel_id)
        return bool(await self._redis.set(key, "1", nx=True, px=PROBE_LEASE_MS))
