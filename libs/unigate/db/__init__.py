"""Postgres access shared by the services: connection pools and schema migrations."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, wait_seconds: float = 60.0
) -> asyncpg.Pool:
    """A pool, waiting (bounded) for Postgres if it is not up yet, so services can start
    in any order and ride out a database restart during their own start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.2
    while True:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
            assert pool is not None
            return pool
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("postgres not reachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
