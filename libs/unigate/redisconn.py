"""Redis clients whose pools wait for a free connection instead of failing under bursts."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def connect_redis(url: str, *, max_connections: int = 64, wait_seconds: float = 5.0) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds
    )
    return Redis(connection_pool=pool)
