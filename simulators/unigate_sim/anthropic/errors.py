"""Anthropic's error answers: ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the status each error type stands for (Anthropic's "Errors" page)."""

from __future__ import annotations

# Anthropic's table of error types and statuses has one home, shared with the gateway and
# the relay (transcribed once from the "Errors" page).
from unigate.anthropic_errors import STATUS_OF_TYPE
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject


def error_body(error_type: str, message: str) -> JSONObject:
    """The body of an error of ``error_type`` (also the data of a stream's ``error`` event)."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": random_id("req_", 24),
    }


class AnthropicError(Exception):
    """An error the simulator answers with, typed as Anthropic types it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = STATUS_OF_TYPE[error_type]

    def body(self) -> JSONObject:
        return error_body(self.error_type, self.message)


def invalid(message: str) -> AnthropicError:
    """A 400 ``invalid_request_error``."""
    return AnthropicError("invalid_request_error", message)
