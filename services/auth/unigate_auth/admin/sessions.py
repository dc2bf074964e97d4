"""Who is calling the admin RPCs: sessions, access tokens, passwords and login throttling.

Sessions live in Redis under the deployment's namespace (``<ns>:session:<id>`` → user id,
with a per-user set so that a password change, a disable or a delete ends every session of
that user at once). The gateway keeps only the session id, in a signed cookie. Access tokens
(One API's ``access_token``) are stored as SHA-256 hashes in ``users.access_token_hash``:
they are 256-bit random, so no slow hash is needed, and the lookup is by hash.

Passwords are argon2id (argon2-cffi's default type, RFC 9106 parameters). Failed logins are
counted in fixed windows per account and client address, per address, and per account
(usernames case-folded and hashed into the keys). At the first two limits that address is
refused before any password is checked; past the per-account ceiling every try of the
account, from anywhere, is slowed (never refused), so that no one can lock the owner out.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from unigate.namespace import Namespace
from unigate.redisconn import get_many

ROLE_USER, ROLE_ADMIN, ROLE_ROOT = 1, 10, 100
STATUS_ENABLED, STATUS_DISABLED = 1, 2
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that the answer takes as long as for a
# known user and does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def hash_access_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Caller:
    id: int
    username: str
    role: int
    group: str
    must_change_password: bool
    session_id: str  # "" when the caller came with an access token

    @property
    def is_admin(self) -> bool:
        return self.role >= ROLE_ADMIN

    @property
    def is_root(self) -> bool:
        return self.role >= ROLE_ROOT

    def outranks(self, role: int) -> bool:
        """May act on a user of ``role``: a higher role, or root (root manages root)."""
        return self.is_root or self.role > role


CALLER_COLUMNS = 'id, username, role, status, "group", must_change_password'


class Sessions:
    def __init__(self, redis: Redis, ns: Namespace, ttl_seconds: int) -> None:
        self._redis = redis
        self._ns = ns
        self._ttl = ttl_seconds

    def _key(self, session_id: str) -> str:
        return self._ns.redis_key("session", session_id)

    def _user_key(self, user_id: int) -> str:
        return self._ns.redis_key("user-sessions", user_id)

    async def create(self, user_id: int) -> str:
        session_id = secrets.token_urlsafe(32)
        # The user's set first, then the session: the two keys are in different slots (no
        # MULTI on Redis Cluster), and in this order a session never exists unlisted, where
        # ``end_all`` (a password change) could not find it.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._user_key(user_id), session_id)
            pipe.expire(self._user_key(user_id), self._ttl)
            await pipe.execute()
        await self._redis.set(self._key(session_id), str(user_id), ex=self._ttl)
        return session_id

    async def user_of(self, session_id: str) -> int | None:
        raw = await self._redis.get(self._key(session_id))
        return int(raw) if raw is not None else None

    async def end(self, session_id: str, user_id: int) -> None:
        await self._redis.delete(self._key(session_id))
        await self._redis.srem(self._user_key(user_id), session_id)

    async def end_all(self, user_id: int, *, keep: str = "") -> None:
        """End every session of a user (password changed, disabled, deleted), but ``keep``."""
        members = await self._redis.smembers(self._user_key(user_id))
        names = [m.decode() if isinstance(m, bytes) else m for m in members]
        ended = [m for m in names if m != keep]
        if ended:
            pipe = self._redis.pipeline(transaction=False)
            for s in ended:  # one DEL per session: they are in different slots
                pipe.delete(self._key(s))
            await pipe.execute()
            await self._redis.srem(self._user_key(user_id), *ended)


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    # Failures on one account from one address before that address is refused for it.
    per_user: int
    # Failures from one address, on any accounts, before that address is refused.
    per_ip: int
    window_seconds: int
    # Failures on one account from anywhere beyond which each try of it waits (doubling up
    # to max_delay) before its password is checked. Slowed, never refused: an attacker
    # cannot lock the real owner out from everywhere.
    account_slowdown_after: int = 10
    max_delay_seconds: float = 5.0


def _account(username: str) -> str:
    """A fixed-size key part for a username: case folded (as usernames are unique by), so
    "Root" and "root" are throttled together, and hashed, so a 20 MB name is 32 bytes."""
    return hashlib.sha256(username.lower().encode()).hexdigest()[:32]


class LoginThrottle:
    """Failed logins per account and address, per address, and per account, in fixed
    windows (module docstring)."""

    def __init__(self, redis: Redis, ns: Namespace, limits: ThrottleLimits) -> None:
        self._redis = redis
        self._ns = ns
        self._limits = limits

    def _keys(self, username: str, client_ip: str) -> tuple[str, str, str]:
        """(account + address, address, account)."""
        account = _account(username)
        address = (client_ip or "unknown")[:64]
        return (
            self._ns.redis_key("login-fail", "account-ip", account, address),
            self._ns.redis_key("login-fail", "ip", address),
            self._ns.redis_key("login-fail", "account", account),
        )

    async def blocked_for(self, username: str, client_ip: str) -> int:
        """Seconds until this address may try this account again; 0 when it may now."""
        pair_key, ip_key, _ = self._keys(username, client_ip)
        pair_fails, ip_fails = await get_many(self._redis, [pair_key, ip_key])
        waits = []
        if pair_fails is not None and int(pair_fails) >= self._limits.per_user:
            waits.append(await self._redis.ttl(pair_key))
        if ip_fails is not None and int(ip_fails) >= self._limits.per_ip:
            waits.append(await self._redis.ttl(ip_key))
        return max([max(w, 1) for w in waits], default=0)

    async def delay_for(self, username: str) -> float:
        """How long a try of this account waits before its password is checked."""
        raw = await self._redis.get(self._keys(username, "")[2])
        over = (int(raw) if raw is not None else 0) - self._limits.account_slowdown_after
        if over < 0:
            return 0.0
        return float(min(self._limits.max_delay_seconds, 0.25 * 2 ** min(over, 16)))

    async def failed(self, username: str, client_ip: str) -> None:
        # A MULTI per key (the three are in different slots; each counter and its expiry must
        # still go together, or a counter could outlive its window).
        for key in self._keys(username, client_ip):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                # NX: the window starts at the first failure and is not extended by later ones.
                pipe.expire(key, self._limits.window_seconds, nx=True)
                await pipe.execute()

    async def succeeded(self, username: str, client_ip: str) -> None:
        await self._redis.delete(self._keys(username, client_ip)[0])


async def caller_by_access_token(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {CALLER_COLUMNS} FROM users WHERE access_token_hash = $1",
        hash_access_token(token),
    )


async def caller_by_id(pool: asyncpg.Pool, user_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {CALLER_COLUMNS} FROM users WHERE id = $1", user_id)
