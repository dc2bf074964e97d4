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
* an embedding is a unit vector derived from a hash of the model and the input;
* a legacy completion (``/v1/completions``) and a Responses API answer (``/v1/responses``)
  also echo ``"Echo: " + <prompt or last user input>``;
* a moderation flags text containing the word "kill" (for violence), and nothing else;
* an image is a 1x1 PNG whose colour derives from the model, prompt and index; ``url``
  answers point at ``GET /images/<digest>.png`` on the simulator itself;
* speech is 24 kHz 16-bit mono audio, 0.05 s per token of input (``audio_formats``);
* a transcription says ``"Transcribed <N> bytes of <filename>"`` (``"Translated ..."``);
* a rerank (``/v1/rerank``, Cohere/Jina shape) scores each document by the share of the
  query's words it contains.

:func:`create_app` returns a Starlette app whose ``state`` carries two lists that tests
inspect and steer:

* ``calls`` — one dict per authenticated request to a known endpoint, in arrival order:
  ``{"method", "path", "model", "stream", "body", "status"}`` (``body`` is the parsed JSON,
  or for multipart uploads the form's fields with each file as ``{"filename",
  "content_type", "size"}``, or None; ``status`` is the HTTP status the simulator answered
  with);
* ``fail_next`` — ``(status, error_body)`` pairs; each authenticated request pops the first
  one, if any, and is answered with it instead of being served (fault injection);
* ``faults`` — richer :class:`Fault` entries (headers, delays, streams cut short or slowed),
  consumed the same way after ``fail_next``; ``stream_endings`` records how each stream
  ended (complete, cut, or abandoned by its client, and when);
* ``api_keys`` — the accepted keys, a set a test may change while the simulator runs.

Modules, in the order a request meets them:

* ``app`` — the Starlette app: routing, call recording, fault injection;
* ``auth`` — API key checks; ``request_body`` — the JSON body and its model, or the
  multipart form (``forms``);
* ``chat_request`` — chat validation, with ``chat_messages`` and ``chat_tools``;
* ``chat_reply`` — what the simulated model answers; ``chat_render`` — JSON or SSE chunks;
* ``completions_request`` and ``completions_render`` — the legacy ``/v1/completions``;
* ``responses_request`` (with ``responses_options``) and ``responses_render`` — the
  Responses API;
* ``embeddings``, ``moderations``, ``images``, ``rerank`` — one module per endpoint;
* ``audio_speech`` (with ``audio_formats``), ``audio_transcriptions`` (with
  ``transcript_render``) — the audio endpoints, whose errors are pydantic-style lists
  (``field_errors``);
* shared: ``value_checks``, ``errors``, ``models``, ``tokens``, ``ids``, ``json_types``,
  ``sse``, ``faults``.
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
