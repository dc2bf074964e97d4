"""Live balances and quota reservations in Redis.

Postgres is the record of every balance. Redis holds, per token and per user:

* ``bal`` — a cached copy of the Postgres balance (expires, so drift heals itself), and
* ``rsvd`` — the sum of reservations not yet settled.

A request may spend ``bal - rsvd``. ``reserve`` checks and books an estimate for the token and
its user in one atomic script (lowered to what is left when the caller allows it, so that the
last units of a balance are spendable); ``settle`` (run by billing after the charge is committed to
Postgres) releases the reservation exactly once and mirrors the charge into ``bal``.
If Redis loses everything, balances are reloaded from Postgres on the next request; the
reservations of the requests in flight at that moment are lost with it, but their charges
still reach the reloaded balance (``begin_load`` / ``load_balances``), so a cached balance
never stands higher than Postgres says.

Loads and refreshes are exact: while one is under way, each settled charge is recorded with the
id of the Postgres transaction that committed it, and the loader reads the balances together
with its statement's snapshot (``Snapshot``), so exactly the charges its read did not see are
subtracted. A refresh (``begin_refresh`` / ``refresh_balances``) re-reads a balance that is
still cached, so drift heals and the balance's TTL (the bound on serving it while Postgres is
unreachable) is re-armed; a balance's reservations stay in Redis meanwhile.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from unigate.namespace import KEY_GROUPS, Namespace

BALANCE_TTL_SECONDS = 300

_RESERVE = """
-- KEYS: 1 token bal, 2 token rsvd, 3 user bal, 4 user rsvd, 5 reservation, 6 index,
--       7.. rate-limit windows
-- ARGV: 1 amount, 2 unlimited, 3 reservation id, 4 token id, 5 user id, 6 now ms,
--       7 n windows, 8..7+n limits, 8+n..7+2n increments, 8+2n window ttl seconds,
--       9+2n gateway id, 10+2n context (a serialized ReservationContext),
--       11+2n least amount worth reserving (the amount is lowered to what is left, not below)
local n = tonumber(ARGV[7])
local held = redis.call('HGET', KEYS[5], 'a')
if held then
  -- This reservation is booked already: a client's retry of a call whose reply was lost (a
  -- connection cut, a master failing over). Book nothing twice; answer as the first time.
  local again = {1, tonumber(held), tonumber(held)}
  for i = 1, n do again[i + 3] = tonumber(redis.call('GET', KEYS[6 + i]) or '0') end
  return again
end
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
local least = tonumber(ARGV[11 + 2 * n])
local uleft = tonumber(ub) - tonumber(redis.call('GET', KEYS[4]) or '0')
if not unlimited then
  local left = tonumber(tb) - tonumber(redis.call('GET', KEYS[2]) or '0')
  if left <= 0 or left < least then return {-2} end
  if left < uleft then uleft = left end
end
if uleft <= 0 or uleft < least then return {-3} end
if uleft < amount then amount = uleft end
if not unlimited then redis.call('INCRBY', KEYS[2], amount) end
redis.call('INCRBY', KEYS[4], amount)
redis.call('HSET', KEYS[5], 'a', amount, 'ul', ARGV[2], 't', ARGV[4], 'u', ARGV[5], 'ts', ARGV[6],
           'g', ARGV[9 + 2 * n], 'x', ARGV[10 + 2 * n])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[3])
local result = {1, amount, uleft}
for i = 1, n do
  local v = redis.call('INCRBY', KEYS[6 + i], ARGV[7 + n + i])
  if v == tonumber(ARGV[7 + n + i]) then redis.call('EXPIRE', KEYS[6 + i], ARGV[8 + 2 * n]) end
  result[i + 3] = v
end
return result
"""

# Spare reservations (see "Spare reservations" in docs/architecture.md): ordinary reservation
# hashes booked ahead of requests for a hot key, each flagged unbound by its expiry ('sp',
# Redis time in ms). Binding one to a request replaces its context with the request's and
# clears the flag; an unbound one is released with no charge. Bind and release are atomic
# against each other: whichever runs first wins, so a spare is either billed as a request's
# reservation or released, never both.
_ISSUE_SPARES = """
-- KEYS: 1 token bal, 2 token rsvd, 3 user bal, 4 user rsvd, 5 index, 6.. spare reservations
-- ARGV: 1 amount each, 2 unlimited, 3 token id, 4 user id, 5 gateway id, 6 context (unbound),
--       7 validity ms, 8 share: issue only while what is left covers share x all spares,
--       9.. the spares' ids (one per key from 6)
local amount = tonumber(ARGV[1])
if amount <= 0 then return 0 end
local unlimited = ARGV[2] == '1'
local tb = redis.call('GET', KEYS[1])
local ub = redis.call('GET', KEYS[3])
if ((not unlimited) and not tb) or not ub then return 0 end
local left = tonumber(ub) - tonumber(redis.call('GET', KEYS[4]) or '0')
if not unlimited then
  local tleft = tonumber(tb) - tonumber(redis.call('GET', KEYS[2]) or '0')
  if tleft < left then left = tleft end
end
local n = math.floor(left / (amount * tonumber(ARGV[8])))
if n > #KEYS - 5 then n = #KEYS - 5 end
if n <= 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[7])
for i = 1, n do
  if not unlimited then redis.call('INCRBY', KEYS[2], amount) end
  redis.call('INCRBY', KEYS[4], amount)
  redis.call('HSET', KEYS[5 + i], 'a', amount, 'ul', ARGV[2], 't', ARGV[3], 'u', ARGV[4],
             'ts', now, 'g', ARGV[5], 'x', ARGV[6], 'sp', expiry)
  redis.call('ZADD', KEYS[5], now, ARGV[8 + i])
end
return n
"""

_BIND_SPARES = """
-- Several spares of one user (one key group: one slot on Redis Cluster), in one call: at a
-- high rate the gateway's bindings wait together, and one script call per batch costs the
-- gateway's client and Redis a fraction of one per spare.
-- KEYS: 1 index, 2.. spare reservations.
-- ARGV: 1 gateway id, then per spare: the request's context, reservation id, request time (ms).
-- Per spare, 1: bound; 0: gone (released, swept), expired, already bound or another gateway's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 2, #KEYS do
  local j = (i - 2) * 3 + 2
  local sp = redis.call('HGET', KEYS[i], 'sp')
  if sp and redis.call('HGET', KEYS[i], 'g') == ARGV[1] and now < tonumber(sp) then
    redis.call('HDEL', KEYS[i], 'sp')
    -- From now on it is the request's reservation, opened when the request arrived.
    redis.call('HSET', KEYS[i], 'x', ARGV[j], 'ts', ARGV[j + 2])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[j + 2], ARGV[j + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

_RELEASE_SPARES = """
-- Several unbound spares of one user (one key group), in one call.
-- KEYS: 1 index, 2 user rsvd, then per spare: the reservation, its token's rsvd.
-- ARGV: 1 '1': only once expired (the sweeper), then per spare its reservation id.
-- Returns how many were released with no charge (a bound, gone or unexpired one is left).
local now = nil
if ARGV[1] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local released = 0
for i = 3, #KEYS, 2 do
  local sp = redis.call('HGET', KEYS[i], 'sp')
  if sp and (now == nil or now >= tonumber(sp)) then
    local a = redis.call('HGET', KEYS[i], 'a')
    if redis.call('HGET', KEYS[i], 'ul') ~= '1' then redis.call('DECRBY', KEYS[i + 1], a) end
    redis.call('DECRBY', KEYS[2], a)
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], ARGV[(i - 3) / 2 + 2])
    released = released + 1
  end
end
return released
"""

# Whether a committed transaction (by id) is in a snapshot "xmin:xmax:running,ids"; an empty
# snapshot or an unknown transaction (id 0) is taken as not seen.
_SEEN = """
local function seen(snap, xid)
  if not snap or snap == '' or xid == '0' then return false end
  local xmin, xmax, running = string.match(snap, '^(%d+):(%d+):(.*)$')
  local x = tonumber(xid)
  if x < tonumber(xmin) then return true end
  if x >= tonumber(xmax) then return false end
  for r in string.gmatch(running, '%d+') do
    if r == xid then return false end
  end
  return true
end
"""

_SETTLE = (
    _SEEN
    + """
-- KEYS: 1 reservation, 2 index, 3 token bal, 4 token rsvd, 5 user bal, 6 user rsvd,
--       7 token load, 8 user load, 9 token refresh, 10 user refresh, 11 token snapshot,
--       12 user snapshot.
-- ARGV: 1 reservation id, 2 charge, 3 unlimited, 4 id of the transaction that committed it,
--       5 '1': mirror the charge only if the reservation was still open (a late settlement)
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
if charge ~= 0 and (ARGV[5] ~= '1' or released == 1) then
  -- A cached balance read from Postgres after this charge was committed holds it already
  -- (its snapshot says so). A load or refresh under way may have read Postgres before: the
  -- charge is recorded by transaction, and the loader subtracts it unless its read saw it.
  local function mirror(bal, ld, rf, sn)
    if redis.call('EXISTS', bal) == 1 and not seen(redis.call('GET', sn), ARGV[4]) then
      redis.call('DECRBY', bal, charge)
    end
    if redis.call('EXISTS', ld) == 1 then redis.call('HINCRBY', ld, ARGV[4], charge) end
    if redis.call('EXISTS', rf) == 1 then redis.call('HINCRBY', rf, ARGV[4], charge) end
  end
  if ARGV[3] ~= '1' then mirror(KEYS[3], KEYS[7], KEYS[9], KEYS[11]) end
  mirror(KEYS[5], KEYS[8], KEYS[10], KEYS[12])
end
return released
"""
)

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

_LOWER = """
-- KEYS: 1 reservation, 2 token rsvd, 3 user rsvd.  ARGV: 1 real cost, 2 token id, 3 user id
local a = tonumber(redis.call('HGET', KEYS[1], 'a') or '-1')
local cost = tonumber(ARGV[1])
if a < 0 or cost >= a or redis.call('HGET', KEYS[1], 't') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'u') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'a', cost)
if redis.call('HGET', KEYS[1], 'ul') ~= '1' then redis.call('DECRBY', KEYS[2], a - cost) end
redis.call('DECRBY', KEYS[3], a - cost)
return a - cost
"""

_LOAD = (
    _SEEN
    + """
-- Triples of (balance, record of charges settled since the load began by transaction id,
-- the snapshot the balance was read under). ARGV: 1 ttl, 2 mode ('load': only where nothing
-- is cached; 'refresh': only where a balance is cached and the record, owned by this
-- refresh, still exists), 3 snapshot ('' if unknown: every recorded charge is subtracted),
-- 4.. the balances read from Postgres, in order of the triples.
for i = 1, #KEYS, 3 do
  local cached = redis.call('EXISTS', KEYS[i]) == 1
  local recorded = redis.call('EXISTS', KEYS[i + 1]) == 1
  if (ARGV[2] == 'load' and not cached) or (ARGV[2] == 'refresh' and cached and recorded) then
    local since = 0
    local rec = redis.call('HGETALL', KEYS[i + 1])
    for j = 1, #rec, 2 do
      if not seen(ARGV[3], rec[j]) then since = since + tonumber(rec[j + 1]) end
    end
    redis.call('SET', KEYS[i], tonumber(ARGV[4 + (i - 1) / 3]) - since, 'EX', ARGV[1])
    if ARGV[3] == '' then redis.call('DEL', KEYS[i + 2])
    else redis.call('SET', KEYS[i + 2], ARGV[3], 'EX', ARGV[1]) end
  end
  redis.call('DEL', KEYS[i + 1])
end
return 1
"""
)

# A Message Batch's reservation: the whole batch's amount, held in one hash (its gateway
# field is BATCH_HOLDER, so the sweeper leaves it alone: a batch may run 24 hours) until its
# results are billed. Then each result gets a reservation of its own, split off this one,
# holding that request's share, its ReservationContext and the provider's usage as a relay
# record: billing settles each when its row is applied (or the sweeper, at that usage, if
# the rows were never published). A result is split off once (its custom id is marked in the
# batch's hash); when all are, what is left of the batch's amount is released and the hash
# goes.
_SPLIT_BATCH = """
-- KEYS: 1 batch reservation, 2 index, 3 token rsvd, 4 user rsvd, 5.. result reservations
-- ARGV: 1 batch reservation id, 2 now ms, 3 requests in the batch, 4 results here, then per
--       result: custom id, reservation id, amount, context, relay usage
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local t = redis.call('HGET', KEYS[1], 't')
local u = redis.call('HGET', KEYS[1], 'u')
local ul = redis.call('HGET', KEYS[1], 'ul')
for i = 1, tonumber(ARGV[4]) do
  local at = 4 + (i - 1) * 5
  if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[at + 1], 1) == 1 then
    local left = tonumber(redis.call('HGET', KEYS[1], 'a'))
    local amount = tonumber(ARGV[at + 3])
    if amount > left then amount = left end
    redis.call('HSET', KEYS[4 + i], 'a', amount, 'ul', ul, 't', t, 'u', u, 'ts', ARGV[2],
               'g', '', 'x', ARGV[at + 4], 'ru', ARGV[at + 5])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[at + 2])
    redis.call('HINCRBY', KEYS[1], 'a', -amount)
    redis.call('HINCRBY', KEYS[1], 'n', 1)
  end
end
if tonumber(redis.call('HGET', KEYS[1], 'n') or '0') < tonumber(ARGV[3]) then return 0 end
local rest = tonumber(redis.call('HGET', KEYS[1], 'a'))
if rest > 0 then
  if ul ~= '1' then redis.call('DECRBY', KEYS[3], rest) end
  redis.call('DECRBY', KEYS[4], rest)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

#: The gateway a batch's reservation names: none (the sweeper never settles it).
BATCH_HOLDER = "message-batch"
# Results split off per script call: bounds one call's work (a batch has up to 100,000).
_SPLIT_CHUNK = 1000
# Spares released per script call (a pool holds up to MAX_SPARES, the sweeper more).
_RELEASE_CHUNK = 256


# How long a balance load may take (read Postgres, write Redis) before its record of the
# charges settled meanwhile is dropped.
LOAD_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The Postgres snapshot a balance was read under (``pg_current_snapshot()`` in the same
    statement): a committed transaction is in the read iff its id < xmin, or < xmax and not
    in ``running``."""

    xmin: int
    xmax: int
    running: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.running))}"


@dataclass(frozen=True, slots=True)
class Balances:
    """Balances read from Postgres for a load or refresh, with the read's snapshot."""

    token_id: int
    token_balance: int | None  # None: an unlimited key, whose balance is not kept
    user_id: int
    user_balance: int
    snapshot: Snapshot | None = None


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
    # What was reserved (when reserved): the amount asked, or less if less was left; and
    # what was left to reserve from (the smaller of the token's and the user's balances).
    amount: int = 0
    left: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    reservation_id: str
    token_id: int
    user_id: int
    # Cost newly committed to Postgres for this request (for a row the sweeper had charged at
    # the reserved amount: the difference, possibly negative); 0 for a duplicate.
    charged: int
    unlimited: bool
    # The Postgres transaction that committed the charge (0: unknown), for exact loads.
    xid: int = 0
    # A late settlement of a charge committed earlier (a redelivery, the sweeper): mirror it
    # into the cached balance only if its reservation was still open, i.e. never settled.
    only_if_open: bool = False


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
    # A spare reservation not bound to any request yet: when it stops being bindable (Redis
    # time, ms); 0 for a request's reservation.
    spare_expiry_ms: int = 0


@dataclass(frozen=True, slots=True)
class BatchShare:
    """One result of a Message Batch, split off the batch's reservation."""

    custom_id: str
    reservation_id: str
    amount: int
    # A serialized ReservationContext and RelayUsage (what the sweeper bills it at).
    context: bytes
    relay_usage: bytes


@dataclass(frozen=True, slots=True)
class RelayUsageNote:
    reservation_id: str
    record: bytes
    # False for a failed call without usage: it only fills an empty slot.
    replaces: bool
    # The install the reservation's keys are bound to (the relay itself has no database).
    install: str = ""
    # The reservation's user, whose hash-tag group its keys are in.
    user_id: int = 0


class QuotaStore:
    """Reserve and settle quota; the key layout is a contract between auth and billing."""

    def __init__(
        self, redis: Redis, ns: Namespace, *, balance_ttl: int = BALANCE_TTL_SECONDS
    ) -> None:
        self._redis = redis
        self._ns = ns
        # How long a cached balance lives without a load or refresh: also how long it keeps
        # serving while Postgres cannot be read (stale-if-error).
        self.balance_ttl = balance_ttl
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._load = redis.register_script(_LOAD)
        self._note_usage = redis.register_script(_NOTE_USAGE)
        self._lower = redis.register_script(_LOWER)
        self._split_batch = redis.register_script(_SPLIT_BATCH)
        self._issue_spares = redis.register_script(_ISSUE_SPARES)
        self._bind_spares = redis.register_script(_BIND_SPARES)
        self._release_spares = redis.register_script(_RELEASE_SPARES)

    # Every key below but the leases is in the owning user's hash-tag group
    # (``Namespace.user_key``): a token's keys under its user's, so that one reservation,
    # settlement or load is one slot on Redis Cluster.
    def _q(self, user_id: int, kind: str, owner_id: int, field: str) -> str:
        return self._ns.user_key(user_id, "q", kind, owner_id, field)

    def _token_keys(self, token_id: int, user_id: int) -> tuple[str, str]:
        return self._q(user_id, "t", token_id, "bal"), self._q(user_id, "t", token_id, "rsvd")

    def _user_keys(self, user_id: int) -> tuple[str, str]:
        return self._q(user_id, "u", user_id, "bal"), self._q(user_id, "u", user_id, "rsvd")

    def _load_key(self, kind: str, owner_id: int, user_id: int) -> str:
        return self._q(user_id, kind, owner_id, "ld")

    def _refresh_key(self, kind: str, owner_id: int, user_id: int) -> str:
        return self._q(user_id, kind, owner_id, "rf")

    def _snapshot_key(self, kind: str, owner_id: int, user_id: int) -> str:
        return self._q(user_id, kind, owner_id, "sn")

    def _intact_key(self, user_id: int) -> str:
        # One marker per key group, in the group's slot: on Redis Cluster a shard (master and
        # replicas) may lose its state while the others keep theirs.
        return self._ns.user_key(user_id, "q", "intact")

    async def state_intact(self, user_id: int) -> bool:
        """False when Redis lost the state of ``user_id``'s key group (flushed, restarted
        empty, a shard lost) since ``mark_intact``: then reservations of requests still
        unbilled are gone too, and a balance read from Postgres may not be trusted until
        billing has applied the backlog."""
        return bool(await self._redis.exists(self._intact_key(user_id)))

    async def mark_intact(self, user_id: int) -> None:
        await self._redis.set(self._intact_key(user_id), int(time.time()))

    def _reservation_key(self, reservation_id: str, user_id: int) -> str:
        return self._ns.user_key(user_id, "rsv", reservation_id)

    @property
    def install(self) -> str:
        """The database identity this store's keys are bound to ("" when unbound)."""
        return self._ns.install

    def reservation_index(self, user_id: int) -> str:
        """The index of open reservations (id -> opened at, ms) of ``user_id``'s group."""
        return self._ns.user_key(user_id, "rsv", "index")

    @property
    def reservation_indexes(self) -> list[str]:
        """Every group's index of open reservations (what the sweeper walks)."""
        return [self._ns.group_key(g, "rsv", "index") for g in range(KEY_GROUPS)]

    def window_key(self, user_id: int, scope: str, now_ms: int) -> str:
        """A rate-limit window, in the group of the user whose request it counts."""
        return self._ns.user_key(user_id, "rl", scope, now_ms // 1000 // RATE_WINDOW_SECONDS)

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
        least: int | None = None,
    ) -> ReserveResult:
        """Check the rate windows and both balances, then book all of them, atomically.
        With ``least`` below ``amount``, a balance between the two is reserved whole (the
        request is then bounded to what it covers); below ``least`` the request is refused."""
        keys = self.reserve_keys(reservation_id, token_id, user_id, windows, now_ms)
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
        args.append(amount if least is None else min(least, amount))
        raw = [int(x) for x in await self._reserve(keys=keys, args=args)]
        outcome = ReserveOutcome(raw[0])
        if outcome is ReserveOutcome.RATE_LIMITED:
            return ReserveResult(outcome, violated=raw[1] - 1, violated_count=raw[2])
        if outcome is ReserveOutcome.RESERVED:
            return ReserveResult(outcome, counts=tuple(raw[3:]), amount=raw[1], left=raw[2])
        return ReserveResult(outcome)

    def reserve_keys(
        self,
        reservation_id: str,
        token_id: int,
        user_id: int,
        windows: tuple[RateWindow, ...],
        now_ms: int,
    ) -> list[str]:
        """The keys the reserve script touches (all in ``user_id``'s group)."""
        tb, tr = self._token_keys(token_id, user_id)
        ub, ur = self._user_keys(user_id)
        keys = [
            tb,
            tr,
            ub,
            ur,
            self._reservation_key(reservation_id, user_id),
            self.reservation_index(user_id),
        ]
        return keys + [self.window_key(user_id, w.scope, now_ms) for w in windows]

    async def lower(self, *, reservation_id: str, token_id: int, user_id: int, cost: int) -> int:
        """Lower an open reservation to its request's real cost (known before billing settles
        it), giving the rest back to the balances; returns the units given back."""
        keys = [
            self._reservation_key(reservation_id, user_id),
            self._token_keys(token_id, user_id)[1],
            self._user_keys(user_id)[1],
        ]
        return int(await self._lower(keys=keys, args=[max(cost, 0), token_id, user_id]))

    async def split_batch(
        self,
        *,
        reservation_id: str,
        token_id: int,
        user_id: int,
        requests: int,
        shares: list[BatchShare],
        now_ms: int,
    ) -> bool:
        """Split a Message Batch's reservation into its results' (see ``_SPLIT_BATCH``), in
        chunks, each atomic and idempotent; True once the batch's reservation is gone (every
        result split off, the rest released, now or before)."""
        done = False
        for start in range(0, max(len(shares), 1), _SPLIT_CHUNK):
            chunk = shares[start : start + _SPLIT_CHUNK]
            keys = [
                self._reservation_key(reservation_id, user_id),
                self.reservation_index(user_id),
                self._token_keys(token_id, user_id)[1],
                self._user_keys(user_id)[1],
                *(self._reservation_key(s.reservation_id, user_id) for s in chunk),
            ]
            args: list[str | int | bytes] = [reservation_id, now_ms, requests, len(chunk)]
            for s in chunk:
                args += [s.custom_id, s.reservation_id, s.amount, s.context, s.relay_usage]
            done = int(await self._split_batch(keys=keys, args=args)) != 0
        return done

    async def issue_spares(
        self,
        *,
        spare_ids: list[str],
        token_id: int,
        user_id: int,
        amount: int,
        unlimited: bool,
        gateway_id: str,
        context: bytes,
        valid_ms: int,
        share: int,
    ) -> list[str]:
        """Book up to ``len(spare_ids)`` reservations of ``amount`` each for ``gateway_id``,
        only as many as leave what is left at least ``share`` times all of them; returns the
        ids booked. Their context is the key's, without a request: unbound."""
        if not spare_ids:
            return []
        tb, tr = self._token_keys(token_id, user_id)
        ub, ur = self._user_keys(user_id)
        keys = [tb, tr, ub, ur, self.reservation_index(user_id)]
        keys += [self._reservation_key(rid, user_id) for rid in spare_ids]
        args: list[str | int | bytes] = [
            amount,
            "1" if unlimited else "0",
            token_id,
            user_id,
            gateway_id,
            context,
            valid_ms,
            share,
            *spare_ids,
        ]
        n = int(await self._issue_spares(keys=keys, args=args))
        return spare_ids[:n]

    async def bind_spares(
        self, user_id: int, gateway_id: str, binds: Sequence[tuple[str, bytes, int]]
    ) -> list[bool]:
        """Make each unexpired spare of ``gateway_id`` (of one user) the reservation of a
        request, before its provider is called; each bind is (reservation id, the request's
        context, its arrival in ms). Whether each was bound, in order; False: it is gone or
        expired, and its request must be authorized afresh."""
        keys = [self.reservation_index(user_id)]
        args: list[bytes | str | int] = [gateway_id]
        for rid, context, now_ms in binds:
            keys.append(self._reservation_key(rid, user_id))
            args += [context, rid, now_ms]
        return [bool(b) for b in await self._bind_spares(keys=keys, args=args)]

    async def release_spares(
        self, spares: list[tuple[str, int, int]], *, only_expired: bool = False
    ) -> int:
        """Release unbound spares (reservation id, token id, user id) with no charge; bound
        ones are left to their request's settlement. Returns how many were released."""
        by_user: dict[int, list[tuple[str, int]]] = {}
        for rid, token_id, user_id in spares:
            by_user.setdefault(user_id, []).append((rid, token_id))
        released = 0
        for user_id, group in by_user.items():
            # One script per user: each user's keys are in one slot (Redis Cluster); chunks
            # keep any one call short (Redis runs nothing else meanwhile).
            for start in range(0, len(group), _RELEASE_CHUNK):
                keys = [self.reservation_index(user_id), self._user_keys(user_id)[1]]
                args: list[str] = ["1" if only_expired else "0"]
                for rid, token_id in group[start : start + _RELEASE_CHUNK]:
                    keys += [
                        self._reservation_key(rid, user_id),
                        self._token_keys(token_id, user_id)[1],
                    ]
                    args.append(rid)
                released += int(await self._release_spares(keys=keys, args=args))
        return released

    async def reclaim_spares(self, *, user_id: int, since_ms: int) -> int:
        """Release every unbound spare of ``user_id`` booked since ``since_ms`` (any of its
        keys', any gateway's): a request its balance covers must not be refused for spares
        no request holds. A spare released here fails its gateway's late binding, and that
        gateway asks auth instead. Returns how many were released."""
        index = self.reservation_index(user_id)
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in await self._redis.zrangebyscore(index, since_ms, "+inf")
        ]
        if not ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hmget(self._reservation_key(rid, user_id), "sp", "u", "t")
        spares: list[tuple[str, int, int]] = []
        # The index is the key group's: other users' reservations are in it too.
        for rid, (sp, u, t) in zip(ids, await pipe.execute(), strict=True):
            if sp is not None and u is not None and t is not None and int(u) == user_id:
                spares.append((rid, int(t), user_id))
        return await self.release_spares(spares)

    async def begin_load(self, *, token_id: int | None, user_id: int) -> None:
        """Call before reading balances from Postgres for ``load_balances``: from now on,
        charges settled while no balance is cached are set aside for the loader, so a
        balance read before they were committed is not cached too high."""
        pipe = self._redis.pipeline(transaction=False)
        keys = [self._load_key("u", user_id, user_id)]
        if token_id is not None:
            keys.append(self._load_key("t", token_id, user_id))
        for key in keys:
            # A hash of charges by transaction id; field "0" only makes it exist.
            pipe.hsetnx(key, "0", 0)
            pipe.expire(key, LOAD_WINDOW_SECONDS)
        await pipe.execute()

    async def load_balances(
        self,
        *,
        token_id: int,
        token_balance: int | None,
        user_id: int,
        user_balance: int,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Seed cached balances read from Postgres (after ``begin_load``), less the charges
        settled since that the read did not see, unless another process already did. Without
        a snapshot every charge settled since ``begin_load`` is subtracted: one committed
        before the read counts twice, so the cache errs low, never high."""
        await self._write_balances(
            "load", Balances(token_id, token_balance, user_id, user_balance, snapshot)
        )

    async def begin_refresh(self, *, token_id: int | None, user_id: int) -> tuple[bool, bool]:
        """Start recording charges for a refresh of cached balances; returns whether this
        caller owns the token's and the user's refresh (another refresh may be under way)."""
        pipe = self._redis.pipeline(transaction=False)
        keys = [self._refresh_key("u", user_id, user_id)]
        if token_id is not None:
            keys.insert(0, self._refresh_key("t", token_id, user_id))
        for key in keys:
            pipe.hsetnx(key, "0", 0)
            pipe.expire(key, LOAD_WINDOW_SECONDS)
        owned = [bool(r) for r in (await pipe.execute())[::2]]
        return (owned[0] if token_id is not None else False), owned[-1]

    async def abandon_refresh(self, *, token_id: int | None, user_id: int, user: bool) -> None:
        """Give up a refresh begun (its read failed), so the next one need not wait: the
        token's (unless ``token_id`` is None) and the user's (if ``user``)."""
        keys = [] if token_id is None else [self._refresh_key("t", token_id, user_id)]
        keys += [self._refresh_key("u", user_id, user_id)] if user else []
        if keys:
            await self._redis.delete(*keys)  # one user's keys: one slot

    async def refresh_balances(self, read: Balances, *, token: bool, user: bool) -> None:
        """Replace cached balances with ``read`` (after ``begin_refresh``, for those it
        owns) less the charges settled since that the read did not see, and re-arm their TTL.
        A balance dropped meanwhile (a top-up, an admin edit) is left for the next load."""
        await self._write_balances(
            "refresh",
            Balances(
                read.token_id,
                read.token_balance if token else None,
                read.user_id,
                read.user_balance,
                read.snapshot,
            ),
            user=user,
        )

    async def _write_balances(self, mode: str, read: Balances, *, user: bool = True) -> None:
        collector = self._load_key if mode == "load" else self._refresh_key
        keys: list[str] = []
        values: list[int] = []
        owners: list[tuple[str, int, int]] = []
        if read.token_balance is not None:
            owners.append(("t", read.token_id, read.token_balance))
        if user:
            owners.append(("u", read.user_id, read.user_balance))
        for kind, owner, balance in owners:
            keys += [
                self._q(read.user_id, kind, owner, "bal"),
                collector(kind, owner, read.user_id),
                self._snapshot_key(kind, owner, read.user_id),
            ]
            values.append(balance)
        if not keys:
            return
        snap = "" if read.snapshot is None else str(read.snapshot)
        await self._load(keys=keys, args=[self.balance_ttl, mode, snap, *values])

    async def forget_balances(self, *, tokens: list[tuple[int, int]], user_ids: list[int]) -> None:
        """Drop cached balances so the next request reloads them (after a top-up or edit):
        of ``tokens`` (token id, its user's id) and of ``user_ids``."""
        # Refreshes under way are called off too: they may have read the old balance.
        keys = [
            k for t, u in tokens for k in (self._q(u, "t", t, "bal"), self._refresh_key("t", t, u))
        ]
        keys += [k for u in user_ids for k in (self._user_keys(u)[0], self._refresh_key("u", u, u))]
        if keys:
            # One DEL per key: the keys may be in several slots.
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.delete(key)
            await pipe.execute()

    async def settle(self, settlements: list[Settlement]) -> int:
        """Release reservations and mirror committed charges; returns how many were released."""
        if not settlements:
            return 0
        # EVALSHA by hand, not the registered script through the pipeline: on Redis Cluster
        # nothing loads the script on a node beforehand (a promoted replica has none), so a
        # NOSCRIPT reply (the script did not run) is retried alone through the script, which
        # loads it; any other error is raised as the pipeline would.
        calls = [(self.settle_keys(s), self._settle_args(s)) for s in settlements]
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._settle.sha, len(keys), *keys, *args)
        released = 0
        for (keys, args), result in zip(
            calls, await pipe.execute(raise_on_error=False), strict=True
        ):
            if isinstance(result, NoScriptError):
                result = await self._settle(keys=keys, args=args)
            elif isinstance(result, Exception):
                raise result
            released += int(result)
        return released

    @staticmethod
    def _settle_args(s: Settlement) -> list[str | int]:
        return [
            s.reservation_id,
            s.charged,
            "1" if s.unlimited else "0",
            s.xid,
            "1" if s.only_if_open else "0",
        ]

    def settle_keys(self, s: Settlement) -> list[str]:
        """The keys the settle script touches (all in ``s.user_id``'s group)."""
        tb, tr = self._token_keys(s.token_id, s.user_id)
        ub, ur = self._user_keys(s.user_id)
        return [
            self._reservation_key(s.reservation_id, s.user_id),
            self.reservation_index(s.user_id),
            tb,
            tr,
            ub,
            ur,
            self._load_key("t", s.token_id, s.user_id),
            self._load_key("u", s.user_id, s.user_id),
            self._refresh_key("t", s.token_id, s.user_id),
            self._refresh_key("u", s.user_id, s.user_id),
            self._snapshot_key("t", s.token_id, s.user_id),
            self._snapshot_key("u", s.user_id, s.user_id),
        ]

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
                    replace(self._ns, install=n.install).user_key(
                        n.user_id, "rsv", n.reservation_id
                    ),
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

    async def stale_reservations(self, before_ms: int, limit: int = 500) -> list[OpenReservation]:
        """Reservations opened before ``before_ms`` and never settled (oldest first, at most
        ``limit``): every group's index is read (one pipeline), then the oldest hashes."""
        indexes = self.reservation_indexes
        pipe = self._redis.pipeline(transaction=False)
        for index in indexes:
            pipe.zrangebyscore(index, "-inf", before_ms, 0, limit, withscores=True)
        found: list[tuple[float, int, str]] = []
        for group, entries in enumerate(await pipe.execute()):
            for rid, score in entries:
                found.append((score, group, rid.decode() if isinstance(rid, bytes) else rid))
        found = sorted(found)[:limit]
        if not found:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for _, group, rid in found:
            pipe.hgetall(self._ns.group_key(group, "rsv", rid))
        out: list[OpenReservation] = []
        gone = []
        for (_, group, rid), fields in zip(found, await pipe.execute(), strict=True):
            if not fields:
                gone.append((group, rid))  # settled, but its index entry outlived it
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
                    spare_expiry_ms=int(fields.get(b"sp", b"0")),
                )
            )
        if gone:
            pipe = self._redis.pipeline(transaction=False)
            for group, rid in gone:
                pipe.zrem(indexes[group], rid)
            await pipe.execute()
        return out

    async def open_reservations(self) -> tuple[int, float | None]:
        """How many reservations are open, and when the oldest was opened (unix ms)."""
        pipe = self._redis.pipeline(transaction=False)
        for index in self.reservation_indexes:
            pipe.zcard(index)
            pipe.zrange(index, 0, 0, withscores=True)
        replies = await pipe.execute()
        count = sum(int(n) for n in replies[::2])
        oldest = [float(first[0][1]) for first in replies[1::2] if first]
        return count, min(oldest, default=None)

    async def try_lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        """Hold a short lease so that one instance among many does periodic work."""
        key = self._ns.redis_key("lease", role)
        if await self._redis.set(key, owner, nx=True, px=ttl_ms):
            return True
        if await self._redis.get(key) == owner.encode():
            await self._redis.pexpire(key, ttl_ms)
            return True
        return False
