"""Cohere's error answers (``{"id", "message"}``) mapped for the gateway.

Statuses (https://docs.cohere.com/reference/errors): 400 and 422 the request (the client's
mistake, passed through with Cohere's words), 401 and 498 an invalid key (the channel's:
disabled), 402 a payment problem (disabled), 429 rate limits (retried elsewhere), 499/5xx
Cohere's side. A 429 saying a trial key's calls for the month are spent is quota, not a rate.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import error_from_upstream, quota_exhausted


def map_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """What the client sees for Cohere's HTTP error, and what becomes of the channel."""
    if status == 498:
        # Cohere's own "invalid token" status: the same as a 401 for the channel.
        status = 401
    if status == 429 and b"/ month" in body.lower():
        return quota_exhausted(429)
    return error_from_upstream(status, body, headers, secrets)
