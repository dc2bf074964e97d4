"""Replicate's errors (problem details ``{"title", "detail", "status"}``), mapped for
failover and for the client: 401 (the token refused) is the channel's and fatal; 402
(insufficient credit) the channel's quota; 429 throttling retried elsewhere; 404 (no such
model) and 422 (input validation failed) the client's; 5xx the provider's. A prediction that
ends ``failed`` is the provider's failure with its ``error``.
"""

from __future__ import annotations

from typing import Any

import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    error_from_upstream,
    provider_failed,
    quota_exhausted,
    scrub,
)
from unigate_relay.providers.upstream import decoded


def replicate_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    data: Any = decoded(body)
    detail = ""
    if isinstance(data, dict):
        detail = str(data.get("detail") or data.get("title") or "")
        fields = data.get("invalid_fields")
        if isinstance(fields, list) and fields:
            detail += ": " + "; ".join(
                str(f.get("description") or f) for f in fields if isinstance(f, dict)
            )
    detail = scrub(detail, secrets)
    if status == 401:
        return credentials_rejected(status, f"Replicate refused this channel's token: {detail}")
    if status == 402:
        return quota_exhausted(status)
    wrapped = orjson.dumps({"error": {"message": detail}})
    return error_from_upstream(status, wrapped, headers, secrets)


def prediction_failed(prediction: dict[str, Any], secrets: list[str]) -> relay_pb2.RelayError:
    status = str(prediction.get("status") or "")
    error = scrub(str(prediction.get("error") or status), secrets)
    return provider_failed(f"the prediction {status}: {error}", upstream_status=200)
