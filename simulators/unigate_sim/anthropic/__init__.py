"""A strict, deterministic simulator of Anthropic's Messages API.

Faithful to Anthropic's API reference: ``POST /v1/messages`` (JSON or SSE),
``POST /v1/messages/count_tokens``, ``GET /v1/models``, the Message Batches API
(``batches``: create, retrieve, list, cancel, results JSONL, delete); the ``x-api-key`` header (401
``authentication_error``) and a required ``anthropic-version``; requests validated as
Anthropic does (``request``, ``blocks``), errors in its shape
(``{"type": "error", "error": {"type", "message"}, "request_id"}``).

Answers are predictable (``reply``): ``"Echo: "`` + the last user turn's text or tool results;
a tool call when ``tool_choice`` forces one or the user mentions the weather (one call per
tool when the user asks for "all tools"); a signed thinking block first when ``thinking`` is
enabled. Usage (``usage``) counts text with the OpenAI simulator's tokenizer and caches
prompt prefixes deterministically: a ``cache_control`` prefix is written the first time (a
5-minute or, with ``"ttl": "1h"``, a 1-hour entry, reported apart in ``cache_creation``) and
read every later time.

``create_anthropic_app`` returns a Starlette app whose ``state`` tests inspect and steer:

* ``calls`` — per authenticated request: ``{"path", "headers", "body", "status"}``;
* ``fail_next`` — ``(status, body)`` answers for the next requests (fault injection);
* ``faults`` — the OpenAI simulator's :class:`Fault` (errors with headers, delays, streams cut
  or slowed); ``stream_endings`` records how streams ended;
* ``stream_errors`` — :class:`StreamError`: a stream that breaks off with an ``error`` event;
* ``api_keys`` (mutable) and ``prompt_cache`` (the prefixes written so far);
* ``batch_delay`` — seconds before a new batch is processed (0.5); ``batch_expired`` — custom
  ids whose requests end ``expired``.
"""

from unigate_sim.anthropic.app import Fault, StreamEnding, StreamError, create_anthropic_app
from unigate_sim.anthropic.blocks import thinking_signature
from unigate_sim.anthropic.errors import AnthropicError
from unigate_sim.anthropic.models import DEFAULT_MODELS
from unigate_sim.anthropic.request import MessagesRequest, parse_messages_request
from unigate_sim.anthropic.usage import (
    IMAGE_TOKENS,
    TOKENS_PER_MESSAGE,
    TOOLS_SYSTEM_TOKENS,
    cached_input,
    input_tokens,
)

__all__ = [
    "DEFAULT_MODELS",
    "IMAGE_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOOLS_SYSTEM_TOKENS",
    "AnthropicError",
    "Fault",
    "MessagesRequest",
    "StreamEnding",
    "StreamError",
    "cached_input",
    "create_anthropic_app",
    "input_tokens",
    "parse_messages_request",
    "thinking_signature",
]
