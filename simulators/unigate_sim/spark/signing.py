"""Checking a signed Spark handshake as iFlytek's gateway does.

Written apart from the relay's signer on purpose: the simulator is the verifier, so a mistake
in the signer cannot hide behind the same code. Statuses and messages are those of iFlytek's
general URL authentication document (its gateway's HMAC plugin).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import parse_qs, urlsplit

#: Each service path and the ``domain`` values its request frames may name (v1.1 answered to
#: ``general`` before Lite was renamed ``lite``).
DOMAINS_BY_PATH: Final[dict[str, frozenset[str]]] = {
    "/v1.1/chat": frozenset({"lite", "general"}),
    "/v2.1/chat": frozenset({"generalv2"}),
    "/v3.1/chat": frozenset({"generalv3"}),
    "/chat/pro-128k": frozenset({"pro-128k"}),
    "/v3.5/chat": frozenset({"generalv3.5"}),
    "/chat/max-32k": frozenset({"max-32k"}),
    "/v4.0/chat": frozenset({"4.0Ultra"}),
}
#: How far the signed date may be from the server's clock.
MAX_SKEW_SECONDS: Final = 300

UNAUTHORIZED: Final = "Unauthorized"
CANNOT_VERIFY: Final = "HMAC signature cannot be verified"
NO_MATCH: Final = "HMAC signature does not match"
BAD_DATE: Final = (
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC "
    "Authentication"
)
NO_ROUTE: Final = "no Route matched with those values"
_FIELD_RE: Final = re.compile(r'\s*(\w+)="([^"]*)"\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str


def expected_signature(host: str, date: str, path: str, api_secret: str) -> str:
    """What the signature of a handshake must be."""
    signed = "\n".join((f"host: {host}", f"date: {date}", f"GET {path} HTTP/1.1"))
    mac = hmac.new(api_secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def _fields(authorization: str) -> dict[str, str] | None:
    try:
        text = base64.b64decode(authorization, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    fields: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _FIELD_RE.match(text, position)
        if match is None:
            return None
        fields[match.group(1)] = match.group(2)
        position = match.end()
    return fields


def check_handshake(
    target: str, host_header: str, secrets: dict[str, str], now: float
) -> tuple[str, str] | Refusal:
    """``(path, api_key)`` of a valid handshake to ``target`` (the request line's path and
    query), else why it is refused. ``secrets`` maps API keys to their APISecret."""
    parts = urlsplit(target)
    if parts.path not in DOMAINS_BY_PATH:
        return Refusal(404, NO_ROUTE)
    query = parse_qs(parts.query, keep_blank_values=True)
    values = {name: query.get(name, []) for name in ("authorization", "date", "host")}
    if any(len(found) != 1 or not found[0] for found in values.values()):
        return Refusal(401, UNAUTHORIZED)
    authorization, date, host = (values[name][0] for name in ("authorization", "date", "host"))
    try:
        signed_at = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Refusal(403, BAD_DATE)
    if abs(now - signed_at) > MAX_SKEW_SECONDS:
        return Refusal(403, BAD_DATE)
    fields = _fields(authorization)
    if (
        fields is None
        or set(fields) != {"api_key", "algorithm", "headers", "signature"}
        or fields["algorithm"] != "hmac-sha256"
        or fields["headers"] != "host date request-line"
        or fields["api_key"] not in secrets
    ):
        return Refusal(401, CANNOT_VERIFY)
    # The signed host must be the one the request was sent to.
    if host != host_header:
        return Refusal(401, NO_MATCH)
    expected = expected_signature(host, date, parts.path, secrets[fields["api_key"]])
    if not hmac.compare_digest(expected, fields["signature"]):
        return Refusal(401, NO_MATCH)
    return parts.path, fields["api_key"]
