"""Which shape an error of a relayed route leaves in: Google's on the Gemini-native routes,
Anthropic's on the Messages routes, OpenAI's everywhere else (each route's clients read
only their own), and the headers that tell a client its request id."""

from __future__ import annotations

from unigate import errors
from unigate.gemini_endpoints import is_gemini
from unigate_gateway import anthropic_api, gemini_api


def error_json(err: errors.ClientFacingError, endpoint: str) -> tuple[int, bytes]:
    """(status, body) of an error answer on ``endpoint``."""
    if is_gemini(endpoint):
        return gemini_api.error_json(err)
    return anthropic_api.error_json(err, endpoint)


def error_frame(err: errors.ClientFacingError, endpoint: str) -> bytes:
    """The SSE event that ends a stream in error on ``endpoint``."""
    if is_gemini(endpoint):
        return gemini_api.error_frame(err)
    return anthropic_api.error_frame(err, endpoint)
