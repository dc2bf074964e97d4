"""Retrying what a backing service refuses for a moment: one backoff schedule, and a bounded
retry for what a service waits on at start (Postgres coming up, a NATS cluster forming)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def backoff(first: float = 0.2, cap: float = 5.0) -> Iterator[float]:
    """The pauses between tries: ``first``, doubling, never above ``cap``. Soon enough to
    catch a restart that takes a second, sparse enough not to load a service that is down."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


async def retry_within(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[Exception], bool],
    within: float,
    what: str,
    log: logging.Logger,
) -> T:
    """``attempt()``'s result, tried again after each ``transient`` error (a warning each
    time, ``what`` naming the wait) until ``within`` seconds have passed; then, or on any
    other error, the error is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for delay in backoff():
        try:
            return await attempt()
        except Exception as exc:
            if not transient(exc) or loop.time() + delay > deadline:
                raise
            log.warning("%s (%r); retrying in %.1fs", what, exc, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable: backoff() never ends")
