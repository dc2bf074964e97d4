"""The Anthropic Messages API on the wire: where it lives, its version header, and the
vocabulary shared by the request, response and stream conversions.

Reference: Anthropic's API docs, "Messages" (``POST /v1/messages``), "Streaming Messages",
"Count message tokens" (``POST /v1/messages/count_tokens``), "Errors" and "Versions"
(``anthropic-version: 2023-06-01``).
"""

from __future__ import annotations

from typing import Any, Final

JSONObject = dict[str, Any]

DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
API_VERSION: Final = "2023-06-01"
MESSAGES_PATH: Final = "/v1/messages"
COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"

# The endpoint names relays know the Messages API by (the gateway's /v1/messages routes).
MESSAGES: Final = "messages"
COUNT_TOKENS: Final = "messages.count_tokens"

#: Anthropic's ``stop_reason`` → OpenAI's ``finish_reason``.
FINISH_REASONS: Final[dict[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server tool paused a long turn; the client continues it: a normal end for OpenAI.
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}

#: OpenAI's ``finish_reason`` → Anthropic's ``stop_reason`` (for answers going the other way).
STOP_REASONS: Final[dict[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class ConversionError(ValueError):
    """A request that cannot be expressed in the other protocol: the client's 400."""

    def __init__(self, message: str, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def finish_reason(stop_reason: Any) -> str | None:
    """OpenAI's finish reason for an Anthropic stop reason (None while still generating)."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def stop_reason(finish: Any) -> str | None:
    """Anthropic's stop reason for an OpenAI finish reason."""
    if not isinstance(finish, str) or not finish:
        return None
    return STOP_REASONS.get(finish, "end_turn")
