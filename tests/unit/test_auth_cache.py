"""Auth's in-process cache: one load for callers that miss together, and a config change
(``clear``) is never undone by a load that began before it."""

from __future__ import annotations

import asyncio

import pytest

from unigate_auth.cache import TTLCache


async def test_callers_that_miss_together_share_one_load() -> None:
    loads = 0
    release = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return "record"

    cache: TTLCache[str, str] = TTLCache(5.0)
    waiters = [asyncio.create_task(cache.get_or_load("k", load)) for _ in range(32)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*waiters) == ["record"] * 32
    assert loads == 1
    assert await cache.get_or_load("k", load) == "record" and loads == 1  # cached


async def test_a_failed_shared_load_fails_every_waiter_and_is_retried() -> None:
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise ConnectionError("database down")
        return "record"

    cache: TTLCache[str, str] = TTLCache(5.0)
    results = await asyncio.gather(
        *(cache.get_or_load("k", load) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1
    assert await cache.get_or_load("k", load) == "record"


async def test_a_cancelled_caller_does_not_cancel_the_load_for_others() -> None:
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "record"

    cache: TTLCache[str, str] = TTLCache(5.0)
    first = asyncio.create_task(cache.get_or_load("k", load))
    second = asyncio.create_task(cache.get_or_load("k", load))
    await asyncio.sleep(0.01)
    first.cancel()
    release.set()
    assert await second == "record"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_clear_is_not_undone_by_a_load_begun_before_it() -> None:
    """A key revoked while its record was being read: the read's (older) value must not be
    cached, and a caller after the change must not join the older read."""
    version = "enabled"
    release_old = asyncio.Event()

    async def load() -> str:
        seen = version
        if seen == "enabled":
            await release_old.wait()
        return seen

    cache: TTLCache[str, str] = TTLCache(5.0)
    before = asyncio.create_task(cache.get_or_load("k", load))
    await asyncio.sleep(0.01)
    version = "revoked"
    cache.clear()  # the config.changed broadcast
    after = await cache.get_or_load("k", load)
    assert after == "revoked"
    release_old.set()
    assert await before == "enabled"  # that request began before the change
    assert await cache.get_or_load("k", load) == "revoked"
    assert cache.get("k") == "revoked"
