"""A strict, deterministic simulator of the OpenAI HTTP API.

Tests and local development use it in place of the real provider. It validates requests
the way OpenAI does (same status codes, same ``{"error": {message, type, param, code}}``
bodies) and answers immediately — there are no sleeps, so it also serves load tests — with
predictable content:

* a chat completion answers ``"Echo: " + <text of the last user message>`` (or of the tool
  results, when the conversation ends with them); with ``tools`` and a user message that
  mentions the weather it calls the first tool instead;
* usage comes from :func:`count_tokens` and :func:`count_prompt_tokens`, so tests can
  predict it exactly;
* an embedding is a unit vector derived from a hash of the model and the input.

:func:`create_app` returns a Starlette app whose ``state`` carries two lists that tests
inspect and steer:

* ``calls`` — one dict per authenticated request to a known endpoint, in arrival order:
  ``{"method", "path", "model", "stream", "body", "status"}`` (``body`` is the parsed JSON,
  or None; ``status`` is the HTTP status the simulator answered with);
* ``fail_next`` — ``(status, error_body)`` pairs; each authenticated request pops the first
  one, if any, and is answered with it instead of being served (fault injection);
* ``faults`` — richer :class:`Fault` entries (headers, delays, streams cut short or slowed),
  consumed the same way after ``fail_next``; ``stream_endings`` records how each stream
  ended (complete, cut, or abandoned by its client, and when);
* ``api_keys`` — the accepted keys, a set a test may change while the simulator runs.

Modules, in the order a request meets them:

* ``app`` — the Starlette app: routing, call recording, fault injection;
* ``auth`` — API key checks; ``request_body`` — the JSON body and its model;
* ``chat_request`` — chat validation, with ``chat_messages`` and ``chat_tools``;
* ``chat_reply`` — what the simulated model answers; ``chat_render`` — JSON or SSE chunks;
* ``embeddings`` — embeddings validation, vectors and rendering;
* shared: ``value_checks``, ``errors``, ``models``, ``tokens``, ``ids``, ``json_types``.
"""

from unigate_sim.openai.app import create_app
from unigate_sim.openai.auth import mask_api_key
from unigate_sim.openai.embeddings import embedding_vector
from unigate_sim.openai.errors import OpenAIError
from unigate_sim.openai.faults import Fault, StreamEnding
from unigate_sim.openai.models import DEFAULT_MODELS
from unigate_sim.openai.tokens import (
    IMAGE_PART_TOKENS,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    count_prompt_tokens,
    count_tokens,
    message_text,
    token_pieces,
)

__all__ = [
    "DEFAULT_MODELS",
    "IMAGE_PART_TOKENS",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "Fault",
    "OpenAIError",
    "StreamEnding",
    "count_prompt_tokens",
    "count_tokens",
    "create_app",
    "embedding_vector",
    "mask_api_key",
    "message_text",
    "token_pieces",
]
