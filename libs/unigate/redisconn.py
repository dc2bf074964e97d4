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

from collections.abc import Sequence
from typing import cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
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


def _cluster(url: str, *, max_connections: int) -> Redis:
    parts = urlsplit(url)
    user, password, nodes = _hosts(parts.netloc)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=user,
        password=password,
        ssl=parts.scheme.lower().startswith("rediss"),
        # Per node; RedisCluster raises rather than waits when they are all busy, so a node
        # gets several times a single Redis's pool.
        max_connections=max_connections * 4,
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
