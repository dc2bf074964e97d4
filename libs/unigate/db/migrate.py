"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, each once.

Concurrent runs (several services starting at once) serialise on an advisory lock. After the
schema, the root user is ensured to exist.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from argon2 import PasswordHasher

log = logging.getLogger(__name__)

_LOCK_ID = 0x756E6967  # "unig"
DEFAULT_ROOT_PASSWORD = "123456"


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("unigate.db.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


async def migrate(dsn: str, *, root_password: str | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, sql in _migrations():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("applied migration %s", name)
                applied.append(name)
            await _ensure_root(conn, root_password)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()


async def _ensure_root(conn: asyncpg.Connection, root_password: str | None) -> None:
    if await conn.fetchval("SELECT 1 FROM users WHERE role = 100 LIMIT 1"):
        return
    password = root_password or os.environ.get("INITIAL_ROOT_PASSWORD") or ""
    must_change = not password
    password = password or DEFAULT_ROOT_PASSWORD
    await conn.execute(
        "INSERT INTO users (username, password_hash, must_change_password, display_name,"
        " role, status, quota) VALUES ('root', $1, $2, 'Root User', 100, 1, $3)"
        " ON CONFLICT (username) DO NOTHING",
        PasswordHasher().hash(password),
        must_change,
        # One API gives root a large starting quota so a fresh install can make calls.
        100_000_000_000,
    )
    log.info("created root user%s", " (password must be changed)" if must_change else "")


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist; returns True if created."""
    url = urlsplit(dsn)
    name = url.path.lstrip("/")
    if not name:
        return False
    admin_dsn = urlunsplit(url._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()
