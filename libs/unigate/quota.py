"""Live balances and quota reservations in Redis.

Postgres is the record of every balance. Redis holds, per token and per user:

* ``bal`` — a cached copy of the Postgres balance (expires, so drift heals itself), and
* ``rsvd`` — the sum of reservations not yet settled.

A request may spend ``bal - rsvd``. ``reserve`` checks and books an estimate for the token and
its user in one atomic script; ``settle`` (run by billing after the charge is committed to
Postgres) releases the reservation exactly once and mirrors the charge into ``bal``.
If Redis loses everything, balances are reloaded from Postgres on the next request; the
reservations of the requests in flight at that moment are lost with it, but their charges
still reach the reloaded balance (``begin_load`` / ``load_balances``), so a cached balance
never stands higher than Postgres says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from unigate.namespace import Namespace

BALANCE_TTL_SECONDS = 300

_RESERVE = """
-- KEYS: 1 token bal, 2 token rsvd, 3 user bal, 4 user rsvd, 5 reservation, 6 index,
--       7.. rate-limit windows
-- ARGV: 1 amount, 2 unlimited, 3 reservation id, 4 token id, 5 user id, 6 now ms,
--       7 n windows, 8..7+n limits, 8+n..7+2n increments, 8+2n window ttl seconds,
--       9+2n gateway id, 10+2n context (a serialized ReservationContext)
local n = tonumber(ARGV[7])
local counts = {}
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[6 + i]) or '0')
  if c + tonumber(ARGV[7 + n + i]) > tonumber(ARGV[7 + i]) then return {-4, i, c} end
  counts[i] = c
end
local unlimited = ARGV[2] == '1'
local tb = redis.call('GET', KEYS[1])
local ub = redis.call('GET', KEYS[3])
if ((not unlimited) and not tb) or not ub then return {-1} end
local amount = tonumber(ARGV[1])
if not unlimited then
  local left = tonumber(tb) - tonumber(redis.call('GET', KEYS[2]) or '0')
  if left <= 0 or left < amount then return {-2} end
end
local uleft = tonumber(ub) - tonumber(redis.call('GET', KEYS[4]) or '0')
if uleft <= 0 or uleft < amount then return {-3} end
if not unlimited then redis.call('INCRBY', KEYS[2], amount) end
redis.call('INCRBY', KEYS[4], amount)
redis.call('HSET', KEYS[5], 'a', amount, 'ul', ARGV[2], 't', ARGV[4], 'u', ARGV[5], 'ts', ARGV[6],
           'g', ARGV[9 + 2 * n], 'x', ARGV[10 + 2 * n])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[3])
local result = {1}
for i = 1, n do
  local v = redis.call('INCRBY', KEYS[6 + i], ARGV[7 + n + i])
  if v == tonumber(ARGV[7 + n + i]) then redis.call('EXPIRE', KEYS[6 + i], ARGV[8 + 2 * n]) end
  result[i + 1] = v
end
return result
"""

_SETTLE = """
-- KEYS: 1 reservation, 2 index, 3 token bal, 4 token rsvd, 5 user bal, 6 user rsvd,
--       7 token load, 8 user load.  ARGV: 1 reservation id, 2 charge, 3 unlimited
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
-- Negative for a correction that charged less than the sweeper had.
if charge ~= 0 then
  -- No cached balance but a load under way: the loader may have read Postgres before this
  -- charge was committed; it subtracts what gathers here.
  if ARGV[3] ~= '1' then
    if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('DECRBY', KEYS[3], charge)
    elseif redis.call('EXISTS', KEYS[7]) == 1 then redis.call('INCRBY', KEYS[7], charge) end
  end
  if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('DECRBY', KEYS[5], charge)
  elseif redis.call('EXISTS', KEYS[8]) == 1 then redis.call('INCRBY', KEYS[8], charge) end
end
return released
"""

# A relay's record of a finished provider call, kept in the reservation's hash (so settling,
# which deletes the hash, drops it too). Never recreates a settled reservation; a failed call
# without usage never replaces what an earlier call of the same request recorded.
_NOTE_USAGE = """
-- KEYS: 1 reservation.  ARGV: 1 record, 2 '1' if it replaces any earlier record
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' or redis.call('HEXISTS', KEYS[1], 'ru') == 0 then
  redis.call('HSET', KEYS[1], 'ru', ARGV[1])
  return 1
end
return 0
"""

_LOAD = """
-- Pairs of (balance key, load key) with ARGV the balances read from Postgres, in order.
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local since = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
    redis.call('SET', KEYS[i], tonumber(ARGV[math.floor(i / 2) + 2]) - since, 'EX', ARGV[1])
  end
  redis.call('DEL', KEYS[i + 1])
end
return 1
"""

# How long a balance load may take (read Postgres, write Redis) before its record of the
# charges settled meanwhile is dropped.
LOAD_WINDOW_SECONDS = 60


class ReserveOutcome(enum.Enum):
    RESERVED = 1
    NEEDS_LOAD = -1
    TOKEN_EXHAUSTED = -2
    USER_EXHAUSTED = -3
    RATE_LIMITED = -4


RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One fixed one-minute window: ``scope`` is e.g. "t:12:rpm"; ``cost`` is what this
    request adds (1 for requests, its estimated tokens for tokens)."""

    scope: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class ReserveResult:
    outcome: ReserveOutcome
    # Window counts after this request (when reserved), in the order given.
    counts: tuple[int, ...] = ()
    # The window that refused the request (when rate limited) and its count.
    violated: int = -1
    violated_count: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    reservation_id: str
    token_id: int
    user_id: int
    # Cost newly committed to Postgres for this request (for a row the sweeper had charged at
    # the reserved amount: the difference, possibly negative); 0 for a duplicate.
    charged: int
    unlimited: bool


@dataclass(frozen=True, slots=True)
class OpenReservation:
    reservation_id: str
    token_id: int
    user_id: int
    amount: int
    unlimited: bool
    created_ms: int
    # The gateway holding it ("" when its gateway did not say), what auth captured for the
    # ledger row (a serialized ReservationContext) and the relay's record of the provider's
    # usage (a serialized RelayUsage), each b"" when absent.
    gateway_id: str = ""
    context: bytes = b""
    relay_usage: bytes = b""


@dataclass(frozen=True, slots=True)
class RelayUsageNote:
    reservation_id: str
    record: bytes
    # False for a failed call without usage: it only fills an empty slot.
    replaces: bool


class QuotaStore:
    """Reserve and settle quota; the key layout is a contract between auth and billing."""

    def __init__(self, redis: Redis, ns: Namespace) -> None:
        self._redis = redis
        self._ns = ns
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._load = redis.register_script(_LOAD)
        self._note_usage = redis.register_script(_NOTE_USAGE)

    def _token_keys(self, token_id: int) -> tuple[str, str]:
        return self._ns.redis_key("q", "t", token_id, "bal"), self._ns.redis_key(
            "q", "t", token_id, "rsvd"
        )

    def _user_keys(self, user_id: int) -> tuple[str, str]:
        return self._ns.redis_key("q", "u", user_id, "bal"), self._ns.redis_key(
            "q", "u", user_id, "rsvd"
        )

    def _load_key(self, kind: str, owner_id: int) -> str:
        return self._ns.redis_key("q", kind, owner_id, "ld")

    def _reservation_key(self, reservation_id: str) -> str:
        return self._ns.redis_key("rsv", reservation_id)

    @property
    def reservation_index(self) -> str:
        return self._ns.redis_key("rsv", "index")

    def window_key(self, scope: str, now_ms: int) -> str:
        return self._ns.redis_key("rl", scope, now_ms // 1000 // RATE_WINDOW_SECONDS)

    async def reserve(
        self,
        *,
        reservation_id: str,
        token_id: int,
        user_id: int,
        amount: int,
        unlimited: bool,
        now_ms: int,
        windows: tuple[RateWindow, ...] = (),
        gateway_id: str = "",
        context: bytes = b"",
    ) -> ReserveResult:
        """Check the rate windows and both balances, then book all of them, atomically."""
        tb, tr = self._token_keys(token_id)
        ub, ur = self._user_keys(user_id)
        keys = [tb, tr, ub, ur, self._reservation_key(reservation_id), self.reservation_index]
        keys += [self.window_key(w.scope, now_ms) for w in windows]
        args: list[str | int | bytes] = [
            amount,
            "1" if unlimited else "0",
            reservation_id,
            token_id,
            user_id,
            now_ms,
            len(windows),
        ]
        args += [w.limit for w in windows]
        args += [w.cost for w in windows]
        args.append(RATE_WINDOW_SECONDS + 5)
        args += [gateway_id, context]
        raw = [int(x) for x in await self._reserve(keys=keys, args=args)]
        outcome = ReserveOutcome(raw[0])
        if outcome is ReserveOutcome.RATE_LIMITED:
            return ReserveResult(outcome, violated=raw[1] - 1, violated_count=raw[2])
        return ReserveResult(outcome, counts=tuple(raw[1:]))

    async def begin_load(self, *, token_id: int | None, user_id: int) -> None:
        """Call before reading balances from Postgres for ``load_balances``: from now on,
        charges settled while no balance is cached are set aside for the loader, so a
        balance read before they were committed is not cached too high."""
        pipe = self._redis.pipeline(transaction=False)
        if token_id is not None:
            pipe.set(self._load_key("t", token_id), 0, nx=True, ex=LOAD_WINDOW_SECONDS)
        pipe.set(self._load_key("u", user_id), 0, nx=True, ex=LOAD_WINDOW_SECONDS)
        await pipe.execute()

    async def load_balances(
        self, *, token_id: int, token_balance: int | None, user_id: int, user_balance: int
    ) -> None:
        """Seed cached balances read from Postgres (after ``begin_load``), less the charges
        settled since, unless another process already did. A charge committed before the
        read and settled after ``begin_load`` counts twice: the cache errs low, never high,
        and heals when it expires."""
        keys: list[str] = []
        args: list[int] = [BALANCE_TTL_SECONDS]
        if token_balance is not None:
            keys += [self._token_keys(token_id)[0], self._load_key("t", token_id)]
            args.append(token_balance)
        keys += [self._user_keys(user_id)[0], self._load_key("u", user_id)]
        args.append(user_balance)
        await self._load(keys=keys, args=args)

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
                    self._load_key("t", s.token_id),
                    self._load_key("u", s.user_id),
                ],
                args=[s.reservation_id, s.charged, "1" if s.unlimited else "0"],
                client=pipe,
            )
        return sum(int(r) for r in await pipe.execute())

    async def note_relay_usage(self, notes: list[RelayUsageNote]) -> None:
        """Record relays' usage records next to their reservations: one round trip.

        EVALSHA by hand rather than through the registered script: a script in a pipeline
        costs a SCRIPT EXISTS round trip per batch and, measured, 9 µs more CPU per record
        (``bench/usage_record.py``); a server that lost its scripts gets this one again."""
        if not notes:
            return
        for attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for n in notes:
                pipe.execute_command(
                    "EVALSHA",
                    self._note_usage.sha,
                    1,
                    self._reservation_key(n.reservation_id),
                    n.record,
                    "1" if n.replaces else "0",
                )
            try:
                await pipe.execute()
                return
            except NoScriptError:
                # Nothing ran (a record is idempotent anyway): load the script, send again.
                if attempt:
                    raise
                await self._redis.script_load(_NOTE_USAGE)

    async def stale_reservations(
        self, before_ms: int, limit: int = 500, offset: int = 0
    ) -> list[OpenReservation]:
        """Reservations opened before ``before_ms`` and never settled (oldest first)."""
        raw = await self._redis.zrangebyscore(
            self.reservation_index, "-inf", before_ms, offset, limit
        )
        ids = [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hgetall(self._reservation_key(rid))
        out, gone = [], []
        for rid, fields in zip(ids, await pipe.execute(), strict=True):
            if not fields:
                gone.append(rid)  # settled, but its index entry outlived it
                continue
            out.append(
                OpenReservation(
                    reservation_id=rid,
                    token_id=int(fields[b"t"]),
                    user_id=int(fields[b"u"]),
                    amount=int(fields[b"a"]),
                    unlimited=fields[b"ul"] == b"1",
                    created_ms=int(fields[b"ts"]),
                    gateway_id=fields.get(b"g", b"").decode(),
                    context=fields.get(b"x", b""),
                    relay_usage=fields.get(b"ru", b""),
                )
            )
        if gone:
            await self._redis.zrem(self.reservation_index, *gone)
        return out

    async def try_lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        """Hold a short lease so that one instance among many does periodic work."""
        key = self._ns.redis_key("lease", role)
        if await self._redis.set(key, owner, nx=True, px=ttl_ms):
            return True
        if await self._redis.get(key) == owner.encode():
            await self._redis.pexpire(key, ttl_ms)
            return True
        return False
