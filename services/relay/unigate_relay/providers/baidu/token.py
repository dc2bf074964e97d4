"""Baidu's OAuth access tokens: exchanged from a channel's API key and secret key, cached
until shortly before they expire.

``POST {host}/oauth/2.0/token?grant_type=client_credentials&client_id=<API key>``
``&client_secret=<Secret key>`` answers ``{"access_token", "expires_in", ...}`` (30 days),
or HTTP 401 ``{"error": "invalid_client", "error_description": ...}`` for a wrong pair
(https://ai.baidu.com/ai-doc/REFERENCE/Ck3dwjhhu). One exchange per key pair serves every
call: concurrent calls that find no valid token wait for the one exchange in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from unigate_relay.providers.upstream import decoded

TOKEN_PATH = "/oauth/2.0/token"
# Renew this long before Baidu's expiry (One API renews within the last hour), or after 90 %
# of a lifetime shorter than ten hours.
_RENEW_BEFORE_SECONDS = 3600.0


class TokenError(Exception):
    """The exchange failed. ``rejected``: Baidu refused the key pair (the channel's fault, for
    good); otherwise the exchange could not be completed (worth retrying elsewhere)."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float  # time.monotonic()


def split_key(channel_key: str) -> tuple[str, str]:
    """``"APIKey|SecretKey"`` → the pair; anything else is a misconfigured channel."""
    api_key, sep, secret_key = channel_key.partition("|")
    if not sep or not api_key.strip() or not secret_key.strip() or "|" in secret_key:
        raise TokenError("A Baidu channel key must be `APIKey|SecretKey`.", rejected=True)
    return api_key.strip(), secret_key.strip()


class AccessTokens:
    """Access tokens per (host, key pair), shared by every call of the relay."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.exchanges = 0  # token requests made (observable in tests and metrics)

    async def get(
        self, http: aiohttp.ClientSession, host: str, channel_key: str, wait_seconds: float | None
    ) -> str:
        """A valid access token for ``channel_key`` at ``host``, exchanging one if needed."""
        slot = (host, channel_key)
        token = self._tokens.get(slot)
        if token is not None and time.monotonic() < token.renew_at:
            return token.value
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            # Another call may have exchanged it while this one waited for the lock.
            token = self._tokens.get(slot)
            if token is not None and time.monotonic() < token.renew_at:
                return token.value
            token = await self._exchange(http, host, channel_key, wait_seconds)
            self._tokens[slot] = token
            return token.value

    def invalidate(self, host: str, channel_key: str, value: str) -> None:
        """Forget ``value`` (Baidu said it expired or is invalid) unless already replaced."""
        slot = (host, channel_key)
        token = self._tokens.get(slot)
        if token is not None and token.value == value:
            del self._tokens[slot]

    async def _exchange(
        self, http: aiohttp.ClientSession, host: str, channel_key: str, wait_seconds: float | None
    ) -> _Token:
        api_key, secret_key = split_key(channel_key)
        self.exchanges += 1
        params = {
            "grant_type": "client_credentials",
            "client_id": api_key,
            "client_secret": secret_key,
        }
        try:
            async with await asyncio.wait_for(
                http.post(
                    host + TOKEN_PATH,
                    params=params,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                ),
                wait_seconds,
            ) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenError(
                f"Could not obtain a Baidu access token: {type(exc).__name__}", rejected=False
            ) from exc
        data = decoded(body)
        if not isinstance(data, dict):
            raise TokenError(
                f"Baidu's token endpoint answered HTTP {status} without JSON.",
                rejected=False,
            )
        value = data.get("access_token")
        if status == 200 and isinstance(value, str) and value:
            lifetime = float(data.get("expires_in") or 0) or 2592000.0
            margin = min(_RENEW_BEFORE_SECONDS, lifetime * 0.1)
            return _Token(value, time.monotonic() + lifetime - margin)
        error = str(data.get("error") or "")
        description = str(data.get("error_description") or "")
        message = f"Baidu refused the channel's API key: {error} {description}".strip()
        # invalid_client (wrong pair), unauthorized_client / invalid_grant (no such grant for
        # the app): the key pair itself; anything else (5xx) may pass.
        rejected = status in (400, 401, 403) or error.startswith(("invalid", "unauth"))
        raise TokenError(message, rejected=rejected)
