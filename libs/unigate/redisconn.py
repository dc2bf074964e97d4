"""Redis clients: one Redis, a Sentinel-watched master, or a Redis Cluster, chosen by the URL.

``REDIS_CONN_STRING`` takes one of:

* ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS): one Redis;
* ``redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/db]``
  (``rediss+sentinel://``): the master Sentinel reports for ``<master name>``, followed
  across failovers; the password is the master's (Sentinels are asked without one);
* ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``): a
  Redis Cluster, any of whose nodes may be listed (the rest are discovered).

Sentinel and Cluster use redis-py's own clients (``Sentinel``, ``RedisCluster``): they follow
failovers and MOVED/ASK redirections; unigate's key layout (``Namespace.user_key``) keeps
every script and transaction in one hash slot, so the same code runs on all three.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel

_SENTINEL = ("redis+sentinel", "rediss+sentinel")
_CLUSTER = ("redis+cluster", "rediss+cluster")


def connect_redis(url: str, *, max_connections: int = 64, wait_seconds: float = 5.0) -> Redis:
    """A client whose pool waits for a free connection instead of failing under bursts."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in _CLUSTER:
        return _cluster(url, max_connections=max_connections)
    if scheme in _SENTINEL:
        return _sentinel(url, max_connections=max_connections)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds
    )
    return Redis(connection_pool=pool)


def _hosts(netloc: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """(user, password, [(host, port)]) of ``[user:password@]host:port[,host:port...]``."""
    auth, _, hosts = netloc.rpartition("@")
    user, _, password = auth.partition(":")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_CONN_STRING: expected host:port, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    return (unquote(user) or None), (unquote(password) or None), nodes


class _WaitingCluster(RedisCluster):
    """A ``RedisCluster`` whose callers wait for a free connection under a burst.

    redis-py's cluster client raises ``MaxConnectionsError`` once a node's connections are all
    busy, where a single Redis's ``BlockingConnectionPool`` waits: a burst of requests would
    fail instead of queueing. Commands and pipelines in flight are bounded client-wide to the
    per-node limit, so no node can run out, and the rest wait their turn."""

    def __init__(self, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.in_flight = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.in_flight:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py
        # (The stubs call ClusterPipeline abstract; redis-py's own pipeline() builds it so.)
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client = self.cluster_client
        assert isinstance(client, _WaitingCluster)
        async with client.in_flight:
            return await super().execute(raise_on_error, allow_redirections)


def _cluster(url: str, *, max_connections: int) -> Redis:
    parts = urlsplit(url)
    user, password, nodes = _hosts(parts.netloc)
    client = _WaitingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=user,
        password=password,
        ssl=parts.scheme.lower().startswith("rediss"),
        max_connections=max_connections,
    )
    # RedisCluster serves every command unigate sends (single-slot scripts and transactions,
    # non-transactional pipelines split by node): typed as the one client the code is for.
    return cast(Redis, client)


def _sentinel(url: str, *, max_connections: int) -> Redis:
    parts = urlsplit(url)
    user, password, nodes = _hosts(parts.netloc)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("REDIS_CONN_STRING: redis+sentinel:// needs /<master name>")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(
        nodes,
        ssl=parts.scheme.lower().startswith("rediss"),
        username=user,
        password=password,
        db=db,
    )
    # redis-py's Sentinel pool does not wait for a free connection (no wait_seconds).
    master: Redis = sentinel.master_for(path[0], max_connections=max_connections)
    return master


async def get_many(redis: Redis, keys: Sequence[str | bytes]) -> list[bytes | None]:
    """GET of each key (one pipeline): unlike MGET, the keys may be in different slots."""
    if not keys:
        return []
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(await pipe.execute())
