"""A small in-process TTL cache, cleared wholesale when a config change is broadcast.

Stale-if-error: an entry outlives its TTL by ``stale_seconds``; ``get_or_load`` serves it only
when reloading it fails (Postgres down), so known keys, routes and options keep working
through a database outage, for a bounded time.

Single flight: callers that miss the same key together share one load (at 32 requests in
flight, an expired hot key used to be read from Postgres by each of them). ``clear`` also
forgets the loads in flight and keeps them from storing what they read: a request after a
config change never gets a value read before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger(__name__)

# A failed reload is tried again after this long, not on every request meanwhile.
RETRY_AFTER_ERROR_SECONDS = 1.0
# A lookup slower than this is treated as failed (a database that hangs, not only one down).
LOAD_TIMEOUT_SECONDS = 2.0


class TTLCache(Generic[K, V]):
    def __init__(
        self, ttl_seconds: float, max_entries: int = 100_000, stale_seconds: float = 0.0
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._stale = stale_seconds
        # key -> (fresh until, usable after an error until, value)
        self._data: dict[K, tuple[float, float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        # Bumped by clear(): a load begun before it must not store its (older) value.
        self._generation = 0

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, stale_until, value = hit
        now = time.monotonic()
        if expires < now:
            if stale_until < now:
                self._data.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, ttl_seconds: float | None = None) -> None:
        if len(self._data) >= self._max:
            self._data.clear()
        now = time.monotonic()
        ttl = ttl_seconds or self._ttl
        self._data[key] = (now + ttl, now + ttl + self._stale, value)

    def clear(self) -> None:
        self._data.clear()
        self._loading.clear()
        self._generation += 1

    async def get_or_load(
        self,
        key: K,
        load: Callable[[], Awaitable[V]],
        ttl_for: Callable[[V], float | None] = lambda _: None,
    ) -> V:
        """The cached value, else ``load()`` cached; if loading fails, the last value while
        it is within its stale window (then the load is tried again a second later)."""
        hit = self._data.get(key)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[2]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load, ttl_for))
            self._loading[key] = pending
            pending.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a caller that gives up (its request cancelled) leaves the load to the rest.
        return await asyncio.shield(pending)

    def _forget(self, key: K, done: asyncio.Future[V]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have given up

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], ttl_for: Callable[[V], float | None]
    ) -> V:
        generation = self._generation
        hit = self._data.get(key)
        now = time.monotonic()
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_SECONDS):
                value = await load()
        except Exception as exc:
            if hit is None or hit[1] < now:
                raise
            log.warning("lookup failed (%r); serving the cached copy", exc)
            if generation == self._generation:
                self._data[key] = (now + RETRY_AFTER_ERROR_SECONDS, hit[1], hit[2])
            return hit[2]
        if generation == self._generation:
            self.put(key, value, ttl_for(value))
        return value
