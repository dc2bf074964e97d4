"""Serving a hot key's requests from spare reservations, without a call to auth.

When a key sends several requests for one model and endpoint within a second, the gateway's
next ``Authorize`` for it asks auth for spare reservations as well (``spares_wanted``). Auth
books them in Redis as ordinary reservations of this gateway, unbound, only while the balance
covers them comfortably and the key has no rate limit, and returns them with the decision.
The following requests of that key, model and endpoint are served from them here: the key's
facts are checked as auth checks them (client address, expiry; the model and endpoint are the
pool's), the request's reservation is computed with auth's own code
(:func:`unigate.reservation.plan`) and must fit in a spare, then the spare is bound to the
request in Redis (its id and context, atomically, refused once the spare expired or was
released) before any provider is called. Anything else falls back to ``Authorize``.

A pool is never used past its validity (at most 1 s from when its ``Authorize`` was sent;
Redis refuses a late binding by its own clock) and every pool is dropped at once on a
``config.changed`` broadcast. Spares not used are released (no charge) when their pool
expires, is replaced or dropped, and at shutdown; a gateway that dies leaves them to billing's
sweeper, which releases an unbound spare with no ledger row and settles a bound one as any
request's reservation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from unigate import telemetry
from unigate.charge import price_of
from unigate.namespace import Namespace
from unigate.pricing import Price
from unigate.quota import QuotaStore
from unigate.request_ids import arrived_ms, new_request_id
from unigate.reservation import plan
from unigate.reservation_context import reservation_context
from unigate.routing import draw_order
from unigate.subnets import IPNetwork, ip_allowed
from unigate.v1 import auth_pb2
from unigate_gateway import metrics

log = logging.getLogger(__name__)

# Requests of one key, model and endpoint within a second that make it hot.
HOT_REQUESTS = 3
HOT_WINDOW_SECONDS = 1.0
# A pool's spares are not used in the last moments of their validity: the binding would race
# Redis' own expiry (and the gateway's clock is not Redis').
SAFETY_SECONDS = 0.05
# How often expired pools are looked for (their spares released).
JANITOR_SECONDS = 0.25
# A pool is refilled when this share of its spares is left, not when it is empty: else, at a
# high rate, every request arriving between the last spare and the new pool went to auth
# (measured at 32 connections: auth's CPU per request 0.18 ms, against 0.07 at one). It is
# also refilled when this share of its validity is left, however many spares it still has:
# a key too slow to use three quarters of a pool within its second had the pool expire, and
# its next request went to auth (a CI run saw one request to auth per background refill,
# which this race explains; not reproduced locally).
REFILL_AT = 0.25

PoolKey = tuple[str, str, str]  # api key, model, endpoint
# Sends a spares-only Authorize for a pool and keeps (or drops) what it returns.
Refill = Callable[[PoolKey, auth_pb2.AuthorizeRequest], Coroutine[Any, Any, None]]
# A spare's binding (reservation id, request context, arrival ms) and its caller's answer.
_Binding = tuple[tuple[str, bytes, int], asyncio.Future[bool]]


@dataclass(slots=True)
class _Pool:
    decision: auth_pb2.AuthorizeResponse  # the decision the spares came with
    ids: list[str]
    amount: int
    deadline: float  # time.monotonic()
    subnets: tuple[IPNetwork, ...]
    expired_time: int
    ceiling: int
    default_completion: int
    price: Price
    upstream_models: tuple[str, ...]
    # At this many spares left, or from this time on (time.monotonic()), the next request
    # has a new pool asked for (REFILL_AT) while the rest keep being served from this one.
    low_water: int
    refill_from: float


@dataclass(slots=True)
class _Heat:
    since: float
    count: int = 0
    refilling: bool = False
    # The count of the window just before this one. A key's rate does not start again from
    # nothing each second: sized by the new window's count alone, the pools of the first
    # moments of every second were a few spares each, and with a refill in flight the request
    # after the last spare went to auth (seen in CI: 7 requests to auth per 10 refills).
    previous: int = 0

    @property
    def rate(self) -> int:
        """Requests per window, as far as the last two windows tell."""
        return max(self.count, self.previous)


@dataclass(slots=True)
class SparePools:
    redis: Redis
    ns: Namespace
    gateway_id: str
    max_wanted: int = 64
    # The background refill (the proxy's, which holds the auth client); None: the request at
    # a pool's low water goes to auth itself and waits for the next pool.
    refill: Refill | None = None
    _pools: dict[PoolKey, _Pool] = field(default_factory=dict)
    _heat: dict[PoolKey, _Heat] = field(default_factory=dict)
    _stores: dict[str, QuotaStore] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Per (install, user): the bindings gathering for the next script call.
    _binding: dict[tuple[str, int], list[_Binding]] = field(default_factory=dict)
    # Bumped by every broadcast: a decision asked for before one is not kept.
    generation: int = 0

    def _store(self, install: str) -> QuotaStore:
        store = self._stores.get(install)
        if store is None:
            store = self._stores[install] = QuotaStore(
                self.redis, replace(self.ns, install=install)
            )
        return store

    # ---- asking ---------------------------------------------------------------------------
    def note(self, key: PoolKey) -> None:
        """Count a request of ``key`` towards its heat."""
        now = time.monotonic()
        heat = self._heat.get(key)
        if heat is None or now - heat.since > HOT_WINDOW_SECONDS:
            if heat is None and len(self._heat) > 10_000:
                self._heat = {
                    k: h for k, h in self._heat.items() if now - h.since <= HOT_WINDOW_SECONDS
                }
            # The window just ended is still this key's rate; an older one is not.
            previous = heat.count if heat and now - heat.since <= 2 * HOT_WINDOW_SECONDS else 0
            refilling = heat.refilling if heat else False
            heat = self._heat[key] = _Heat(now, refilling=refilling, previous=previous)
        heat.count += 1

    def wanted(self, key: PoolKey) -> int:
        """How many spares the next Authorize of ``key`` asks for: none unless the key is
        hot and no other Authorize of it is asking already."""
        heat = self._heat.get(key)
        if heat is None or self.max_wanted <= 0 or not self._may_refill(heat):
            return 0
        heat.refilling = True
        return min(heat.rate * 2, self.max_wanted)

    @staticmethod
    def _may_refill(heat: _Heat | None) -> bool:
        """A key is hot and no Authorize of it is asking for spares already."""
        return heat is not None and not heat.refilling and heat.rate >= HOT_REQUESTS

    def asked(self, key: PoolKey) -> None:
        """The Authorize that asked for spares is over (whatever it returned)."""
        heat = self._heat.get(key)
        if heat is not None:
            heat.refilling = False

    def keep(
        self,
        key: PoolKey,
        decision: auth_pb2.AuthorizeResponse,
        sent_at: float,
        generation: int,
    ) -> None:
        """Keep the spares a decision came with (``sent_at``: monotonic time its Authorize
        was sent, which its validity counts from)."""
        spares = decision.spares
        ids = list(spares.ids)
        user_id, install = decision.user_id, decision.install
        if generation != self.generation or not decision.allowed:
            self._release(install, [(i, decision.token_id, user_id) for i in ids])
            return
        template = auth_pb2.AuthorizeResponse()
        template.CopyFrom(decision)
        template.ClearField("spares")
        template.reservation_id = ""
        template.release_early = False
        old = self._pools.get(key)
        valid = spares.valid_ms / 1000
        self._pools[key] = _Pool(
            decision=template,
            ids=ids,
            amount=spares.amount,
            deadline=sent_at + valid - SAFETY_SECONDS,
            subnets=tuple(_networks(spares.subnets)),
            expired_time=spares.expired_time,
            ceiling=spares.ceiling,
            default_completion=spares.default_completion,
            price=price_of(decision.pricing),
            upstream_models=tuple(c.upstream_model for c in decision.candidates),
            low_water=int(len(ids) * REFILL_AT),
            refill_from=sent_at + valid * (1 - REFILL_AT) - SAFETY_SECONDS,
        )
        if old is not None:
            self._drop(old)

    # ---- serving --------------------------------------------------------------------------
    async def take(
        self, key: PoolKey, req: auth_pb2.AuthorizeRequest
    ) -> auth_pb2.AuthorizeResponse | None:
        """A decision for ``req`` backed by a spare bound to it, or None (ask auth)."""
        pool = self._pools.get(key)
        if pool is None or not pool.ids:
            return None
        now = time.monotonic()
        if now >= pool.deadline or (pool.expired_time != -1 and pool.expired_time < time.time()):
            self.forget(key)
            return None
        if pool.subnets and not ip_allowed(req.client_ip, pool.subnets):
            return None  # auth refuses it in its own words
        low = len(pool.ids) <= pool.low_water or now >= pool.refill_from
        if low and self._may_refill(self._heat.get(key)):
            if self.refill is None or not pool.decision.refills_spares:
                return None  # this one asks auth for the next pool (``wanted``)
            # The next pool is asked for in the background, for no request; this one is
            # served from what is left (a quarter of the pool), as the next ones are until
            # the new pool arrives.
            ask = auth_pb2.AuthorizeRequest()
            ask.CopyFrom(req)
            ask.request_id = new_request_id()
            ask.spares_only = True
            ask.spares_wanted = self.wanted(key)
            self._spawn(self.refill(key, ask))
        want = plan(
            pool.price,
            req,
            ceiling=pool.ceiling,
            default_completion=pool.default_completion,
            upstream_models=pool.upstream_models,
        )
        if want.amount > pool.amount:
            return None
        rid = pool.ids.pop()
        template = pool.decision
        context = reservation_context(req, template.token_name, template.group, template.pricing)
        try:
            bound = await self._bind(
                template.install,
                template.user_id,
                (rid, context, arrived_ms(req.request_id) or int(time.time() * 1000)),
            )
        except (RedisError, OSError) as exc:
            log.warning("could not bind a spare reservation: %r", exc)
            bound = False
        if not bound:
            # Expired or released in Redis: so is the rest of the pool (the sweeper releases
            # this one if it is still there).
            if self._pools.get(key) is pool:
                self.forget(key)
            return None
        decision = auth_pb2.AuthorizeResponse()
        decision.CopyFrom(template)
        decision.reservation_id = rid
        decision.reserved_quota = pool.amount
        decision.max_output_tokens = want.bound(pool.price, pool.amount)
        ordered = draw_order(template.candidates, lambda c: c.priority, lambda c: c.weight)
        del decision.candidates[:]
        decision.candidates.extend(ordered)
        metrics.SPARES_SERVED.inc()
        return decision

    async def _bind(self, install: str, user_id: int, bind: tuple[str, bytes, int]) -> bool:
        """Bind one spare, together with the other bindings of the same user made before
        the event loop's next turn: one script call for them all
        (``QuotaStore.bind_spares``). Calls of earlier turns still in Redis are not waited
        for (a batch waiting for the one before it cost more time than the batching saved)."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        group = (install, user_id)
        gathering = self._binding.get(group)
        if gathering is None:
            gathering = self._binding[group] = []
            # A task of its own, so that a request cancelled while waiting (its client left)
            # never cancels the other requests' bindings in the same call; it starts at the
            # loop's next turn, taking every binding gathered until then.
            self._spawn(self._bind_batch(group))
        gathering.append((bind, answer))
        return await answer

    async def _bind_batch(self, group: tuple[str, int]) -> None:
        install, user_id = group
        batch = self._binding.pop(group)
        try:
            with telemetry.untraced_unless_recording():
                bound = await self._store(install).bind_spares(
                    user_id, self.gateway_id, [bind for bind, _ in batch]
                )
        except Exception as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
        except BaseException:
            for _, answer in batch:
                answer.cancel()
            raise
        else:
            for (_, answer), ok in zip(batch, bound, strict=True):
                if not answer.done():
                    answer.set_result(ok)

    # ---- dropping -------------------------------------------------------------------------
    def forget(self, key: PoolKey) -> None:
        """Stop serving ``key`` from spares until auth issues new ones."""
        pool = self._pools.pop(key, None)
        if pool is not None:
            self._drop(pool)

    def drop_all(self) -> None:
        """A config change (a key revoked, a user disabled, a balance or limit changed):
        every pool goes, and decisions asked for before now are not kept."""
        self.generation += 1
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            self._drop(pool)

    def drop_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, p in self._pools.items() if now >= p.deadline]:
            self.forget(key)

    async def janitor(self) -> None:
        while True:
            await asyncio.sleep(JANITOR_SECONDS)
            self.drop_expired()

    async def close(self) -> None:
        """Shutting down: release every unused spare and wait for the releases."""
        self.drop_all()
        # A refill answered meanwhile releases its spares in a task of its own: waited too.
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _drop(self, pool: _Pool) -> None:
        d = pool.decision
        ids, pool.ids = pool.ids, []
        self._release(d.install, [(i, d.token_id, d.user_id) for i in ids])

    def _release(self, install: str, spares: list[tuple[str, int, int]]) -> None:
        if not spares:
            return
        self._spawn(self._release_now(install, spares))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of its own, kept until done (``close`` waits for them)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release_now(self, install: str, spares: list[tuple[str, int, int]]) -> None:
        try:
            await self._store(install).release_spares(spares)
        except (RedisError, OSError) as exc:
            # Left to billing's sweeper, which releases unbound spares once expired.
            log.warning("could not release %d spare reservations: %r", len(spares), exc)


def _networks(subnets: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(s, strict=False) for s in subnets]
