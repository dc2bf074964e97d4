"""Tencent Cloud API 3.0 request signing, TC3-HMAC-SHA256.

Exactly as https://cloud.tencent.com/document/api/213/30654 describes it:

1. CanonicalRequest = method, canonical URI ``/``, canonical query string (empty for a POST),
   canonical headers (``content-type:…\\nhost:…\\n``, lower-case names, trimmed values,
   sorted), signed header names (``content-type;host``), and the lower-case hex SHA-256 of the
   payload, joined by newlines;
2. StringToSign = ``TC3-HMAC-SHA256``, the ``X-TC-Timestamp`` value, the credential scope
   ``<UTC date>/<service>/tc3_request`` and the hex SHA-256 of the canonical request;
3. the signing key is HMAC-SHA256 chained from ``"TC3" + SecretKey`` over the UTC date, the
   service and ``tc3_request``; the signature is the hex HMAC-SHA256 of the string to sign;
4. ``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<scope>, SignedHeaders=…,
   Signature=…``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The credential scope's date: UTC, never the local zone (Tencent's own warning)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(content_type: str, host: str, payload: bytes) -> str:
    headers = f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n"
    return "\n".join(
        ["POST", "/", "", headers, SIGNED_HEADERS, hashlib.sha256(payload).hexdigest()]
    )


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return "\n".join([ALGORITHM, str(timestamp), scope, digest])


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    secret_date = _hmac(("TC3" + secret_key).encode(), utc_date(timestamp))
    secret_service = _hmac(secret_date, service)
    secret_signing = _hmac(secret_service, "tc3_request")
    return hmac.new(secret_signing, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    content_type: str,
    timestamp: int,
    payload: bytes,
) -> str:
    """The ``Authorization`` header of a POST of ``payload`` to ``host``."""
    to_sign = string_to_sign(timestamp, service, canonical_request(content_type, host, payload))
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, "
        f"Signature={signature(secret_key, timestamp, service, to_sign)}"
    )
