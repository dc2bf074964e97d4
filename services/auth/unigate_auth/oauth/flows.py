"""Pending OAuth flows: what ``StartOAuth`` chose and ``FinishOAuth`` must check.

A flow is keyed by the SHA-256 of its ``state`` (256-bit random) in Redis, for
:data:`FLOW_TTL_SECONDS`, and taken with GETDEL: a state is finished at most once, by any
auth process, and a replayed callback finds nothing. The record holds the PKCE verifier
(RFC 7636, S256: only its challenge ever leaves auth), the OIDC nonce, the exact redirect URI
the provider was given (the token request must repeat it) and, for a binding, the user who
started it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import asdict, dataclass

import orjson
from redis.asyncio import Redis

from unigate.namespace import Namespace

# Long enough for a person to log in at the provider; GitHub's codes live 10 minutes too.
FLOW_TTL_SECONDS = 600


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PendingFlow:
    provider: str
    verifier: str
    nonce: str
    redirect_uri: str
    # The user binding the identity; 0 when the flow logs in.
    user_id: int


class OAuthFlows:
    def __init__(self, redis: Redis, ns: Namespace, per_ip_per_minute: int = 30) -> None:
        self._redis = redis
        self._ns = ns
        self._per_ip = per_ip_per_minute

    async def admit(self, client_ip: str) -> int:
        """Seconds this address must wait before opening another flow or trying another
        WeChat code (0: go ahead). Each flow is a Redis record and each WeChat try a guess
        at a six-digit code, so an address gets ``per_ip_per_minute`` of them (One API puts
        its "critical" rate limit on these routes); 0 turns the limit off."""
        if self._per_ip <= 0:
            return 0
        key = self._ns.redis_key("oauth-ip", (client_ip or "unknown")[:64])
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 60, nx=True)
            pipe.ttl(key)
            count, _, ttl = await pipe.execute()
        return max(int(ttl), 1) if int(count) > self._per_ip else 0

    def _key(self, state: str) -> str:
        return self._ns.redis_key("oauth-flow", hashlib.sha256(state.encode()).hexdigest())

    async def open(self, provider: str, redirect_uri: str, user_id: int) -> tuple[str, PendingFlow]:
        state = secrets.token_urlsafe(32)
        flow = PendingFlow(
            provider=provider,
            # 43 characters of [A-Za-z0-9_-]: within RFC 7636's 43..128 unreserved characters.
            verifier=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            redirect_uri=redirect_uri,
            user_id=user_id,
        )
        await self._redis.set(self._key(state), orjson.dumps(asdict(flow)), ex=FLOW_TTL_SECONDS)
        return state, flow

    async def take(self, state: str) -> PendingFlow | None:
        """The flow of ``state``, removed: None if unknown, expired or already taken."""
        if not state or len(state) > 256:
            return None
        raw = await self._redis.getdel(self._key(state))
        if raw is None:
            return None
        return PendingFlow(**orjson.loads(raw))
