"""Postgres access shared by the services: connection pools and schema migrations."""

from __future__ import annotations

import hashlib
import logging

import asyncpg

from unigate.namespace import Namespace
from unigate.retrying import retry_within

log = logging.getLogger(__name__)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, wait_seconds: float = 60.0
) -> asyncpg.Pool:
    """A pool, waiting (bounded) for Postgres if it is not up yet, so services can start
    in any order and ride out a database restart during their own start."""

    async def attempt() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        assert pool is not None
        return pool

    return await retry_within(
        attempt,
        transient=lambda exc: isinstance(exc, OSError | asyncpg.CannotConnectNowError),
        within=wait_seconds,
        what="postgres not reachable",
        log=log,
    )


async def install_id(db: asyncpg.Pool | asyncpg.Connection) -> str:
    """This database's identity, as Redis keys carry it: the install row's random UUID
    (migration 0010) and the database's OID, hashed short. A dropped and recreated database
    has a new row and a new OID; one restored with pg_restore into a new database a new OID;
    a physical restore keeps both, and the operator rotates the row (``unigate install
    rotate``)."""
    row = await db.fetchrow(
        "SELECT i.id::text AS id, d.oid::bigint AS oid FROM install i, pg_database d"
        " WHERE d.datname = current_database()"
    )
    if row is None:
        raise RuntimeError("the install row is missing: run the migrations (unigate migrate)")
    return hashlib.sha256(f"{row['id']}:{row['oid']}".encode()).hexdigest()[:12]


async def bound_namespace(db: asyncpg.Pool | asyncpg.Connection, name: str) -> Namespace:
    """The namespace ``name`` bound to this database (see ``Namespace.install``)."""
    return Namespace(name, await install_id(db))


async def rotate_install_id(db: asyncpg.Pool | asyncpg.Connection) -> str:
    """A new identity for this database (after restoring a physical backup); returns it."""
    await db.execute("UPDATE install SET id = gen_random_uuid()")
    return await install_id(db)
