"""PaLM API errors: the Generative Language API answers Google's error shape, ``{"error":
{"code", "message", "status", "details"}}``, as it does for Gemini, so they are mapped by the
one Google table (:func:`unigate_relay.providers.gemini.errors.google_error`): an invalid key
(400 ``API_KEY_INVALID``), 401/403 and an unsupported region (``FAILED_PRECONDITION``) make
the channel unusable (disabled, retried elsewhere); 429 ``RESOURCE_EXHAUSTED`` is a rate
limit; other 4xx (``INVALID_ARGUMENT``, an unknown model's 404) are the client's; 5xx are
retried elsewhere.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.gemini.errors import google_error


def palm_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """The relay error of a PaLM error answer."""
    return google_error(status, body, headers, secrets)
