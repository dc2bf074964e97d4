"""API key authentication, refused with OpenAI's 401 errors."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from unigate_sim.openai.errors import OpenAIError

_MISSING_KEY_MESSAGE: Final = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def mask_api_key(key: str) -> str:
    """A key as OpenAI echoes it in errors: first 8 and last 4 characters, stars between.

    Keys of 12 characters or fewer are echoed as they are, as OpenAI does.
    """
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def authenticate(request: Request, api_keys: frozenset[str]) -> None:
    """Raise OpenAI's 401 unless the request carries one of ``api_keys`` as a bearer token."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise OpenAIError(401, _MISSING_KEY_MESSAGE)
    if key not in api_keys:
        raise OpenAIError(
            401,
            f"Incorrect API key provided: {mask_api_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
