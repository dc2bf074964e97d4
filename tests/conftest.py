"""Shared fixtures: every test run gets its own database, namespace (Redis key prefix, NATS
subjects and stream) and ports, against the real Postgres, Redis and NATS, and cleans up."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from redis.asyncio import Redis

from unigate.db.migrate import ensure_database, migrate
from unigate.redisconn import connect_redis

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def namespace() -> str:
    return "t" + secrets.token_hex(5)


@pytest.fixture(scope="session")
def secret_key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
async def database(namespace: str) -> AsyncIterator[str]:
    url = urlsplit(PG_ADMIN_DSN)
    dsn = urlunsplit(url._replace(path=f"/unigate_{namespace}"))
    await ensure_database(dsn)
    await migrate(dsn, root_password="test-root-password")
    yield dsn
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "unigate_{namespace}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def pg(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(namespace: str) -> AsyncIterator[Redis]:
    client = connect_redis(REDIS_URL, max_connections=32)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
async def nats_cleanup(namespace: str) -> AsyncIterator[None]:
    yield
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(f"{namespace.upper()}_USAGE")
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("stack-logs")
    yield path
