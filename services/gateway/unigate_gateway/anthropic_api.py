"""The gateway's Anthropic Messages surface: ``POST /v1/messages`` and
``POST /v1/messages/count_tokens``.

They run the same path as ``/v1/chat/completions`` (authorize, candidates, failover, usage
event); what differs is at the edge, per Anthropic's API reference:

* the unigate key may come in ``x-api-key`` (Anthropic's header) or ``Authorization:
  Bearer`` (what Anthropic's newer SDKs send); ``anthropic-version`` is accepted whatever its
  value, since the relay speaks its own version upstream;
* bodies are checked for what Anthropic requires (``model``, ``max_tokens`` — not for
  counting —, a non-empty ``messages`` array of user/assistant turns, a boolean ``stream``);
* every error — the gateway's own (key, quota, limits, validation) and the providers' —
  leaves in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, with
  Anthropic's type for the status (its "Errors" page), also inside a stream as an ``error``
  event.

Counting tokens is not billed: the relay reports zero usage for it, so its ledger row
carries no tokens and no quota.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.datastructures import Headers

from unigate import errors
from unigate.anthropic_errors import type_of_status
from unigate.errors import InvalidRequest
from unigate_gateway.requests import (
    MAX_TOKENS_LIMIT,
    ParsedCall,
    asks_long_cache,
    bearer_key,
    check_model_name,
    counted_prompt,
)

MESSAGES: Final = "messages"
COUNT_TOKENS: Final = "messages.count_tokens"
ENDPOINTS: Final = frozenset({MESSAGES, COUNT_TOKENS})


def is_messages(endpoint: str) -> bool:
    """Whether ``endpoint`` is one of the Anthropic-shaped routes."""
    return endpoint in ENDPOINTS


def messages_key(endpoint: str, headers: Headers) -> str:
    """The unigate key of a request: ``Authorization: Bearer``, or on the Anthropic routes
    ``x-api-key``."""
    key = bearer_key(headers.get("authorization"))
    if not key and is_messages(endpoint):
        key = headers.get("x-api-key", "").strip()
    return key


def request_id_headers(endpoint: str, request_id: str) -> dict[str, str]:
    """The headers that tell a client the id of its request (its ledger row): OpenAI's
    ``x-request-id`` everywhere, and Anthropic's ``request-id`` on the Messages routes, where
    Anthropic's SDK reads it."""
    if is_messages(endpoint):
        return {"X-Request-Id": request_id, "Request-Id": request_id}
    return {"X-Request-Id": request_id}


def anthropic_error(err: errors.ClientFacingError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Anthropic error body) for an error of the gateway or a provider."""
    status = err.status
    if err.type == "overloaded_error":
        status = 529
    etype = "billing_error" if err.type == "insufficient_quota" else type_of_status(status)
    return status, {"type": "error", "error": {"type": etype, "message": err.message}}


def error_json(err: errors.ClientFacingError, endpoint: str) -> tuple[int, bytes]:
    """(status, body) of an error answer on ``endpoint``: Anthropic's shape on the Messages
    routes, OpenAI's elsewhere."""
    if not is_messages(endpoint):
        return err.status, err.json()
    status, body = anthropic_error(err)
    return status, orjson.dumps(body)


def error_frame(err: errors.ClientFacingError, endpoint: str) -> bytes:
    """The SSE event that ends a stream in error on ``endpoint``."""
    if not is_messages(endpoint):
        return b"data: " + err.json() + b"\n\n"
    _, body = anthropic_error(err)
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def _load(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("There was an error parsing the body as JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def check_fields(data: dict[str, Any], *, needs_max_tokens: bool) -> tuple[str, int]:
    """(model, max_tokens) after Anthropic's checks of the fields the gateway relies on."""
    model = data.get("model")
    if model is None:
        raise InvalidRequest("model: Field required", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Input should be a valid string", param="model")
    check_model_name(model, "model")
    max_tokens = data.get("max_tokens")
    if max_tokens is None and needs_max_tokens:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidRequest(
            "max_tokens: Input should be an integer greater than or equal to 1",
            param="max_tokens",
        )
    if max_tokens is not None and max_tokens > MAX_TOKENS_LIMIT:
        raise InvalidRequest(
            f"max_tokens: Input should be less than or equal to {MAX_TOKENS_LIMIT}",
            param="max_tokens",
        )
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
                param=f"messages.{i}.role",
            )
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean", param="stream")
    return model, max_tokens or 0


def parse_messages(body: bytes) -> ParsedCall:
    """A ``POST /v1/messages`` body, checked before anything is spent on it."""
    data = _load(body)
    model, max_tokens = check_fields(data, needs_max_tokens=True)
    return ParsedCall(
        endpoint=MESSAGES,
        body=body,
        model=model,
        stream=data.get("stream") is True,
        # Anthropic's streams always report usage; there is nothing to opt into.
        include_usage=True,
        max_tokens=max_tokens,
        estimated_prompt_tokens=counted_prompt(MESSAGES, data, model, body),
        long_cache_writes=asks_long_cache(body),
    )


def parse_count_tokens(body: bytes) -> ParsedCall:
    """A ``POST /v1/messages/count_tokens`` body (no ``max_tokens``, never streamed)."""
    data = _load(body)
    model, _ = check_fields(data, needs_max_tokens=False)
    if data.get("stream") is not None:
        raise InvalidRequest("stream: Extra inputs are not permitted", param="stream")
    return ParsedCall(
        endpoint=COUNT_TOKENS,
        body=body,
        model=model,
        stream=False,
        include_usage=False,
        max_tokens=0,
        estimated_prompt_tokens=1,
    )
