"""Anthropic's Message Batches on one channel (its API reference: "Create/Retrieve/List/
Cancel/Delete a Message Batch", "Retrieve Message Batch results").

Auth makes these calls (``RelayService.MessageBatch``) for the gateway's
``/v1/messages/batches`` routes and for its poller of open batches: the method and path go to
the channel's base URL with the channel's key in ``x-api-key`` and ``anthropic-version``
(the reference requires both; ``anthropic-beta`` is optional and not sent: batches left
beta). A batch lives in the workspace of the key that created it, so every later call on it
names that key by its fingerprint.

A results file (``parse_results``) is also read here, line by line, into unigate's terms:
each line's ``custom_id``, ``result.type`` and, for a succeeded one, the message's usage
(the same fields as ``/v1/messages``: ``usage_from_anthropic``), which auth bills. The answer
is held whole (one gRPC message), so it is bounded."""

from __future__ import annotations

import aiohttp
import orjson

from unigate.keys import key_fingerprint
from unigate.v1 import relay_pb2
from unigate_relay.channel_proxy import raw_call
from unigate_relay.channels import ChannelConfigs, ChannelNotFound
from unigate_relay.providers.anthropic.response import usage_from_anthropic
from unigate_relay.providers.anthropic.wire import API_VERSION, DEFAULT_BASE_URL
from unigate_relay.providers.base import UPSTREAM_ERRORS, error_from_exception, relay_error

# Under the 64 MiB gRPC message limit (unigate.grpcutil), with room for the parsed lines.
MAX_ANSWER_BYTES = 40 * 1024 * 1024
_METHODS = frozenset({"GET", "POST", "DELETE"})
_PREFIX = "/v1/messages/batches"


def result_lines(body: bytes) -> list[relay_pb2.BatchResultLine]:
    """Each line of a results file: its custom id, result type and (succeeded) usage."""
    out = []
    for raw in body.splitlines():
        if not raw.strip():
            continue
        line = orjson.loads(raw)
        result = line.get("result") if isinstance(line, dict) else None
        if not isinstance(result, dict) or not isinstance(line.get("custom_id"), str):
            raise ValueError("a results line without custom_id and result")
        kind = str(result.get("type", ""))
        parsed = relay_pb2.BatchResultLine(custom_id=line["custom_id"], type=kind)
        message = result.get("message")
        if kind == "succeeded" and isinstance(message, dict):
            parsed.usage.CopyFrom(usage_from_anthropic(message.get("usage")))
            parsed.model = str(message.get("model", ""))
        error = result.get("error")
        if kind == "errored" and isinstance(error, dict):
            inner = error.get("error")
            parsed.error_type = str((inner if isinstance(inner, dict) else error).get("type", ""))
        out.append(parsed)
    return out


async def batch_call(
    request: relay_pb2.BatchUpstreamRequest,
    channels: ChannelConfigs,
    http: aiohttp.ClientSession,
) -> relay_pb2.BatchUpstreamResult:
    if request.method not in _METHODS or not request.path.startswith(_PREFIX):
        return relay_pb2.BatchUpstreamResult(
            error=relay_error(400, "Not a Message Batches call.", code="bad_batch_call")
        )
    try:
        channel = await channels.get(request.channel_id, request.config_version)
    except ChannelNotFound:
        return relay_pb2.BatchUpstreamResult(
            error=relay_error(503, "The batch's channel no longer exists.", code="channel_gone")
        )
    if request.key_fingerprint:
        key = channels.key_named(channel.id, request.key_fingerprint)
        if key is None:
            return relay_pb2.BatchUpstreamResult(
                error=relay_error(
                    503,
                    "The channel key this batch was created with is no longer configured.",
                    code="batch_key_gone",
                )
            )
    else:
        key, _ = channels.next_key(channel.id)
    url = (channel.base_url or DEFAULT_BASE_URL).rstrip("/") + request.path
    headers = {"x-api-key": key, "anthropic-version": API_VERSION}
    if request.body:
        headers["content-type"] = "application/json"
    try:
        answer = await raw_call(
            http, channel, request.method, url, request.body, headers, MAX_ANSWER_BYTES
        )
    except UPSTREAM_ERRORS as exc:
        return relay_pb2.BatchUpstreamResult(error=error_from_exception(exc))
    status, content = answer.status, answer.body
    content_type = answer.headers.get("content-type", "application/json")
    if len(content) > MAX_ANSWER_BYTES:
        return relay_pb2.BatchUpstreamResult(
            error=relay_error(
                502,
                f"The provider's answer is larger than {MAX_ANSWER_BYTES} bytes.",
                code="batch_answer_too_large",
            )
        )
    result = relay_pb2.BatchUpstreamResult(
        http_status=status,
        body=content,
        content_type=content_type,
        key_fingerprint=key_fingerprint(key),
    )
    if request.parse_results and status == 200:
        try:
            result.results.extend(result_lines(content))
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            result.error.CopyFrom(
                relay_error(502, "The provider's results file is unreadable.", code="bad_results")
            )
    return result
