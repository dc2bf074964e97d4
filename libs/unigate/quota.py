"""Live balances and quota reservations in Redis.

Postgres is the record of every balance. Redis holds, per token and per user:

* ``bal`` — a cached copy of the Postgres balance (expires, so drift heals itself), and
* ``rsvd`` — the sum of reservations not yet settled.

A request may spend ``bal - rsvd``. ``reserve`` checks and books an estimate for the token and
its user in one atomic script; ``settle`` (run by billing after the charge is committed to
Postgres) releases the reservation exactly once and mirrors the charge into ``bal``.
If Redis loses everything, balances are reloaded from Postgres on the next request; only
the requests in flight at that moment escape the count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from redis.asyncio import Redis

from unigate.namespace import Namespace

BALANCE_TTL_SECONDS = 300

_RESERVE = """
local unlimited = ARGV[2] == '1'
local tb = redis.call('GET', KEYS[1])
local ub = redis.call('GET', KEYS[3])
if ((not unlimited) and not tb) or not ub then return -1 end
local amount = tonumber(ARGV[1])
if not unlimited then
  local left = tonumber(tb) - tonumber(redis.call('GET', KEYS[2]) or '0')
  if left <= 0 or left < amount then return -2 end
end
local uleft = tonumber(ub) - tonumber(redis.call('GET', KEYS[4]) or '0')
if uleft <= 0 or uleft < amount then return -3 end
if not unlimited then redis.call('INCRBY', KEYS[2], amount) end
redis.call('INCRBY', KEYS[4], amount)
redis.call('HSET', KEYS[5], 'a', amount, 'ul', ARGV[2], 't', ARGV[4], 'u', ARGV[5], 'ts', ARGV[6])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[3])
return 1
"""

_SETTLE = """
local a = redis.call('HGET', KEYS[1], 'a')
local released = 0
if a then
  if redis.call('HGET', KEYS[1], 'ul') ~= '1' then redis.call('DECRBY', KEYS[4], a) end
  redis.call('DECRBY', KEYS[6], a)
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  released = 1
end
local charge = tonumber(ARGV[2])
if charge > 0 then
  if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('DECRBY', KEYS[3], charge)
  end
  if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('DECRBY', KEYS[5], charge) end
end
return released
"""


class ReserveOutcome(enum.Enum):
    RESERVED = 1
    NEEDS_LOAD = -1
    TOKEN_EXHAUSTED = -2
    USER_EXHAUSTED = -3


@dataclass(frozen=True, slots=True)
class Settlement:
    reservation_id: str
    token_id: int
    user_id: int
    # Cost newly committed to Postgres for this request; 0 when the event was a duplicate.
    charged: int
    unlimited: bool


class QuotaStore:
    """Reserve and settle quota; the key layout is a contract between auth and billing."""

    def __init__(self, redis: Redis, ns: Namespace) -> None:
        self._redis = redis
        self._ns = ns
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _token_keys(self, token_id: int) -> tuple[str, str]:
        return self._ns.redis_key("q", "t", token_id, "bal"), self._ns.redis_key(
            "q", "t", token_id, "rsvd"
        )

    def _user_keys(self, user_id: int) -> tuple[str, str]:
        return self._ns.redis_key("q", "u", user_id, "bal"), self._ns.redis_key(
            "q", "u", user_id, "rsvd"
        )

    def _reservation_key(self, reservation_id: str) -> str:
        return self._ns.redis_key("rsv", reservation_id)

    @property
    def reservation_index(self) -> str:
        return self._ns.redis_key("rsv", "index")

    async def reserve(
        self,
        *,
        reservation_id: str,
        token_id: int,
        user_id: int,
        amount: int,
        unlimited: bool,
        now_ms: int,
    ) -> ReserveOutcome:
        tb, tr = self._token_keys(token_id)
        ub, ur = self._user_keys(user_id)
        result = await self._reserve(
            keys=[tb, tr, ub, ur, self._reservation_key(reservation_id), self.reservation_index],
            args=[amount, "1" if unlimited else "0", reservation_id, token_id, user_id, now_ms],
        )
        return ReserveOutcome(int(result))

    async def load_balances(
        self, *, token_id: int, token_balance: int | None, user_id: int, user_balance: int
    ) -> None:
        """Seed cached balances read from Postgres, unless another process already did."""
        pipe = self._redis.pipeline(transaction=False)
        if token_balance is not None:
            pipe.set(self._token_keys(token_id)[0], token_balance, nx=True, ex=BALANCE_TTL_SECONDS)
        pipe.set(self._user_keys(user_id)[0], user_balance, nx=True, ex=BALANCE_TTL_SECONDS)
        await pipe.execute()

    async def forget_balances(self, *, token_ids: list[int], user_ids: list[int]) -> None:
        """Drop cached balances so the next request reloads them (after a top-up or edit)."""
        keys = [self._token_keys(t)[0] for t in token_ids] + [
            self._user_keys(u)[0] for u in user_ids
        ]
        if keys:
            await self._redis.delete(*keys)

    async def settle(self, settlements: list[Settlement]) -> int:
        """Release reservations and mirror committed charges; returns how many were released."""
        if not settlements:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for s in settlements:
            tb, tr = self._token_keys(s.token_id)
            ub, ur = self._user_keys(s.user_id)
            await self._settle(
                keys=[
                    self._reservation_key(s.reservation_id),
                    self.reservation_index,
                    tb,
                    tr,
                    ub,
                    ur,
                ],
                args=[s.reservation_id, s.charged, "1" if s.unlimited else "0"],
                client=pipe,
            )
        return sum(int(r) for r in await pipe.execute())
