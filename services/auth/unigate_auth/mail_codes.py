"""Codes sent by mail (sign-up verification codes, password-reset tokens), and how often an
address and a client may ask for one.

A code is stored only as an HMAC-SHA256 under ``SECRET_KEY`` (a 6-digit code hashed without
a key would be reversed by trying all million), in Redis under the deployment's bound
namespace (``<ns>:<install>:mail-code:<purpose>:<address hash>``), for ``ttl`` seconds. A new
code for the same address and purpose replaces the old one. Checking is one Lua script, so
a code is used at most once even when two requests race: the right code deletes the entry
as it matches; each wrong try is counted and the code dies at ``max_attempts`` wrong tries,
so a 6-digit code cannot be guessed within its life.

Sending is limited in fixed windows per address (so nobody floods a stranger's mailbox) and
per client address (so nobody floods many), counted before anything is looked up or sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from unigate.namespace import Namespace

Purpose = Literal["verify", "reset"]

# Compare-and-delete, counting wrong tries (module docstring). KEYS[1] the code's hash entry;
# ARGV[1] the HMAC of the code offered, ARGV[2] the wrong tries that kill the code.
_CONSUME = """
local stored = redis.call('HGET', KEYS[1], 'h')
if not stored then return 0 end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
if fails >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class MailLimits:
    code_ttl_seconds: int = 600
    sends_per_address: int = 3
    sends_per_ip: int = 10
    window_seconds: int = 900
    max_attempts: int = 5


def normalize_email(email: str) -> str:
    """The form an address is keyed and compared by (addresses are unique by it)."""
    return email.strip().lower()


def new_verification_code() -> str:
    """Six digits, as One API mails (typed by a person)."""
    return f"{secrets.randbelow(1_000_000):06d}"


def new_reset_token() -> str:
    """192 bits: a link is clicked, never typed."""
    return secrets.token_urlsafe(24)


class MailCodes:
    def __init__(self, redis: Redis, ns: Namespace, secret_key: str, limits: MailLimits) -> None:
        self._redis = redis
        self._ns = ns
        self._key = hashlib.sha256(b"unigate mail codes\0" + secret_key.encode()).digest()
        self._limits = limits
        self._consume = redis.register_script(_CONSUME)

    @property
    def limits(self) -> MailLimits:
        return self._limits

    def _digest(self, *parts: str) -> str:
        return hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def _code_key(self, purpose: Purpose, email: str) -> str:
        # The address is hashed into the key: no addresses in Redis, and a fixed key size.
        return self._ns.redis_key("mail-code", purpose, self._digest("addr", email)[:32])

    async def issue(self, purpose: Purpose, email: str, code: str) -> None:
        key = self._code_key(purpose, normalize_email(email))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"h": self._digest(purpose, code), "fails": 0})
            pipe.expire(key, self._limits.code_ttl_seconds)
            await pipe.execute()

    async def consume(self, purpose: Purpose, email: str, code: str) -> bool:
        """True once for the right, live code; False for anything else."""
        if not code or len(code) > 256:
            return False
        key = self._code_key(purpose, normalize_email(email))
        matched = await self._consume(
            keys=[key], args=[self._digest(purpose, code), self._limits.max_attempts]
        )
        return bool(matched)

    async def send_wait(self, email: str, client_ip: str) -> int:
        """Count one request to mail ``email`` from ``client_ip``; the seconds until it may be
        asked again if either window is over its limit (0: go ahead)."""
        address = self._ns.redis_key("mail-send", "addr", self._digest("addr", email)[:32])
        client = self._ns.redis_key("mail-send", "ip", (client_ip or "unknown")[:64])
        # One transaction per key: the two keys may be in different slots (Redis Cluster).
        counted = []
        for key in (address, client):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self._limits.window_seconds, nx=True)
                pipe.ttl(key)
                count, _, ttl = await pipe.execute()
            counted.append((int(count), int(ttl)))
        (by_address, address_ttl), (by_client, client_ttl) = counted
        waits = []
        if by_address > self._limits.sends_per_address:
            waits.append(max(address_ttl, 1))
        if by_client > self._limits.sends_per_ip:
            waits.append(max(client_ttl, 1))
        return max(waits, default=0)
