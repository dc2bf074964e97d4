"""OAuth access tokens for a Google service account, as Vertex AI requires.

Google's server-to-server flow (https://developers.google.com/identity/protocols/oauth2/
service-account#authorizingrequests): a JWT with header ``{"alg": "RS256", "typ": "JWT",
"kid": private_key_id}`` and claims ``iss``/``sub`` (client_email), ``aud`` (token_uri),
``scope``, ``iat`` and ``exp`` (at most an hour later), signed with the account's RSA key
(RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3), is POSTed to ``token_uri`` as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``; the answer is
``{"access_token", "expires_in", "token_type": "Bearer"}``.

Signing uses ``cryptography`` (already a dependency) rather than ``google-auth``: the JWT is a
dozen lines, and google-auth's refresh is synchronous (``requests``), which would block the
relay's event loop or need a thread and a second HTTP stack next to aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI: Final = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME: Final = 3600
# A cached token is replaced this long before Google says it expires (google-auth refreshes
# about 4 minutes early), so no request goes out with a token about to lapse.
REFRESH_MARGIN: Final = 300.0


class CredentialsInvalid(Exception):
    """The service account JSON cannot be used (unparseable, incomplete, bad key)."""


class TokenRefused(Exception):
    """The token endpoint refused the assertion (``fatal``) or failed (retryable)."""

    def __init__(self, message: str, *, status: int, fatal: bool) -> None:
        super().__init__(message)
        self.status = status
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str
    token_uri: str
    project_id: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_service_account(raw: str) -> ServiceAccount:
    """The service account in a key file's JSON (``gcloud iam service-accounts keys create``)."""
    try:
        info = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CredentialsInvalid("the channel key is not a service account JSON") from None
    if not isinstance(info, dict):
        raise CredentialsInvalid("the channel key is not a service account JSON")
    email, pem = info.get("client_email"), info.get("private_key")
    if not isinstance(email, str) or not email or not isinstance(pem, str):
        raise CredentialsInvalid("the service account JSON lacks client_email or private_key")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError:
        raise CredentialsInvalid("the service account's private_key is not a PEM RSA key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsInvalid("the service account's private_key is not an RSA key")
    return ServiceAccount(
        client_email=email,
        private_key=key,
        private_key_id=str(info.get("private_key_id") or ""),
        token_uri=str(info.get("token_uri") or DEFAULT_TOKEN_URI),
        project_id=str(info.get("project_id") or ""),
    )


def signed_assertion(account: ServiceAccount, now: float | None = None) -> str:
    """The RS256-signed JWT that asks ``account.token_uri`` for a cloud-platform token."""
    issued = int(now if now is not None else time.time())
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {
        "iss": account.client_email,
        "sub": account.client_email,
        "aud": account.token_uri,
        "scope": SCOPE,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    signature = account.private_key.sign(
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{_b64url(signature)}"


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float


class TokenCache:
    """Access tokens per service account key (account, key id, token endpoint), each fetched
    once and reused until shortly before it expires. Concurrent callers for the same key wait
    for one fetch."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def _slot(account: ServiceAccount) -> str:
        identity = f"{account.client_email}\n{account.private_key_id}\n{account.token_uri}"
        return hashlib.sha256(identity.encode()).hexdigest()

    def forget(self, account: ServiceAccount) -> None:
        """Drop a token the API refused, so the next call fetches a fresh one."""
        self._tokens.pop(self._slot(account), None)

    async def token(
        self,
        account: ServiceAccount,
        http: aiohttp.ClientSession,
        wait_seconds: float | None,
    ) -> str:
        slot = self._slot(account)
        cached = self._tokens.get(slot)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.value
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(slot)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.value
            value, lifetime = await _fetch(account, http, wait_seconds)
            # Short-lived tokens (tests, odd issuers) are still reused for half their life.
            margin = min(REFRESH_MARGIN, lifetime / 2)
            self._tokens[slot] = _Token(value, time.monotonic() + lifetime - margin)
            return value


async def _fetch(
    account: ServiceAccount, http: aiohttp.ClientSession, wait_seconds: float | None
) -> tuple[str, float]:
    form = {"grant_type": GRANT_TYPE, "assertion": signed_assertion(account)}
    async with http.post(
        account.token_uri, data=form, timeout=aiohttp.ClientTimeout(total=wait_seconds)
    ) as resp:
        status, content = resp.status, await resp.read()
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if status >= 400:
        # RFC 6749 §5.2 errors: invalid_grant (bad signature, unknown or deleted key, clock),
        # invalid_client, unauthorized_client, invalid_scope: the credentials are refused.
        described = f"{data.get('error') or status}: {data.get('error_description') or ''}"
        fatal = status < 500 and status != 429
        raise TokenRefused(described.strip(": "), status=status, fatal=fatal)
    token, lifetime = data.get("access_token"), data.get("expires_in")
    if not isinstance(token, str) or not token:
        raise TokenRefused(
            "the token endpoint answered without an access_token", status=502, fatal=False
        )
    return token, float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 3600.0
