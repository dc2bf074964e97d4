"""iFlytek's signed WebSocket URL and the channel key ``APPID|APISecret|APIKey``.

The URL carries ``authorization``, ``date`` and ``host`` as query parameters: an HMAC-SHA256
(keyed with the APISecret) over ``host: <host>\\ndate: <RFC 1123 date>\\nGET <path> HTTP/1.1``,
wrapped as ``api_key="…", algorithm="hmac-sha256", headers="host date request-line",
signature="…"`` and base64-encoded. The date must be within 300 s of iFlytek's clock.

Reference: https://www.xfyun.cn/doc/spark/general_url_authentication.html (with a worked
example that the unit tests check); One API ``relay/adaptor/xunfei`` for the key format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit


class KeyFormatError(ValueError):
    """The channel key is not ``APPID|APISecret|APIKey``."""


@dataclass(frozen=True, slots=True)
class SparkKey:
    app_id: str
    api_secret: str
    api_key: str


def parse_key(raw: str) -> SparkKey:
    """The three parts of a channel key, in One API's order ``APPID|APISecret|APIKey``."""
    parts = [part.strip() for part in raw.strip().split("|")]
    if len(parts) != 3 or not all(parts):
        raise KeyFormatError("a Spark channel key must be APPID|APISecret|APIKey")
    return SparkKey(app_id=parts[0], api_secret=parts[1], api_key=parts[2])


def rfc1123_date(timestamp: float | None = None) -> str:
    """``Fri, 05 May 2023 10:43:39 GMT`` for ``timestamp`` (now if None)."""
    return formatdate(timestamp, usegmt=True)


def signature(host: str, date: str, path: str, api_secret: str) -> str:
    """The base64 HMAC-SHA256 of the signed headers (``host``, ``date``, the request line)."""
    origin = f"host: {host}\ndate: {date}\nGET {path} HTTP/1.1"
    digest = hmac.new(api_secret.encode(), origin.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def authorization(api_key: str, signed: str) -> str:
    """The ``authorization`` query parameter for a signature."""
    origin = (
        f'api_key="{api_key}", algorithm="hmac-sha256", '
        f'headers="host date request-line", signature="{signed}"'
    )
    return base64.b64encode(origin.encode()).decode()


def signed_url(endpoint: str, api_key: str, api_secret: str, date: str | None = None) -> str:
    """``endpoint`` (``wss://host/path``) with its ``authorization``, ``date`` and ``host``."""
    parts = urlsplit(endpoint)
    date = date or rfc1123_date()
    signed = signature(parts.netloc, date, parts.path, api_secret)
    query = urlencode(
        {"authorization": authorization(api_key, signed), "date": date, "host": parts.netloc}
    )
    return f"{endpoint}?{query}"
