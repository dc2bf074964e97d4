"""Checking a request's Signature Version 4 as AWS does, before anything else is looked at.

Reference: AWS "Signature Version 4 signing process" and "Troubleshoot Signature Version 4
errors": the ``Authorization`` header names the access key, the credential scope
(``date/region/service/aws4_request``), the signed headers (``host`` and ``x-amz-date`` among
them) and the signature; an unknown access key or session token is
``UnrecognizedClientException``, a scope for another region or service, a date more than 5
minutes away from the server's clock or a signature that differs is
``InvalidSignatureException`` (403). The expected signature is recomputed with botocore's
signer over the request as received (raw path, query, signed headers, body) with the secret
the simulator knows for that access key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from unigate_sim.bedrock.errors import BedrockError

SERVICE: Final = "bedrock"
MAX_SKEW: Final = timedelta(minutes=5)
_AUTH: Final = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;.-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
_BAD_TOKEN: Final = "The security token included in the request is invalid."


@dataclass(frozen=True, slots=True)
class Key:
    """A known access key: its secret and, for temporary credentials, its session token."""

    secret: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """A request as it reached the server (raw path and headers, lower-cased names)."""

    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes


def _stamp(moment: datetime) -> str:
    return moment.strftime(SIGV4_TIMESTAMP)


def verify(request: Received, keys: dict[str, Key], region: str, now: datetime) -> str:
    """The access key id of a correctly signed request; raises Bedrock's error otherwise."""
    header = request.headers.get("authorization")
    if not header:
        raise BedrockError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header)
    if match is None:
        raise BedrockError(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            f"parameters. Authorization={header[:40]}",
        )
    akid = match["akid"]
    key = keys.get(akid)
    token = request.headers.get("x-amz-security-token")
    if key is None or (key.token is not None and token != key.token):
        raise BedrockError("UnrecognizedClientException", _BAD_TOKEN)
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise BedrockError(
            "InvalidSignatureException",
            "'Host' and 'X-Amz-Date' must be among the signed headers.",
        )
    if match["region"] != region:
        raise BedrockError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region. Expected '{region}'.",
        )
    if match["service"] != SERVICE:
        raise BedrockError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE}'.",
        )
    amz_date = request.headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise BedrockError(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.",
        ) from None
    if match["date"] != amz_date[:8]:
        raise BedrockError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{match['date']}' != '{amz_date[:8]}'",
        )
    if signed_at < now - MAX_SKEW:
        raise BedrockError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {_stamp(now - MAX_SKEW)} "
            f"({_stamp(now)} - 5 min.)",
        )
    if signed_at > now + MAX_SKEW:
        raise BedrockError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{_stamp(now + MAX_SKEW)} ({_stamp(now)} + 5 min.)",
        )
    content_sha = request.headers.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(request.body).hexdigest():
        raise BedrockError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    expected = _signature(request, signed, Credentials(akid, key.secret, key.token), region)
    if not hmac.compare_digest(expected, match["signature"]):
        raise BedrockError("InvalidSignatureException", _MISMATCH)
    return akid


def _signature(request: Received, signed: list[str], creds: Credentials, region: str) -> str:
    """botocore's signature for the received request, over exactly its signed headers."""
    missing = [name for name in signed if name not in request.headers]
    if missing:
        raise BedrockError("InvalidSignatureException", _MISMATCH)
    url = f"https://{request.headers['host']}{request.raw_path}"
    if request.query:
        url += "?" + request.query
    aws = AWSRequest(
        method=request.method,
        url=url,
        data=request.body,
        headers={name: request.headers[name] for name in signed},
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(creds, SERVICE, region)
    canonical = signer.canonical_request(aws)
    return signer.signature(signer.string_to_sign(aws, canonical), aws)
