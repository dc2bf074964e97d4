"""A strict simulator of Cohere's v2 API: ``POST /v2/chat`` (whole or SSE stream),
``/v2/embed`` and ``/v2/rerank``.

It checks what Cohere checks (https://docs.cohere.com/reference/chat, /embed, /rerank,
/errors): ``Authorization: Bearer <key>`` (401 ``invalid api token``), known fields only,
the model's kind, message roles and shapes (a tool message needs a ``tool_call_id`` that an
earlier assistant call made), function tools with an object schema, parameter ranges (``p``
in [0.01, 0.99], ``k`` in [0, 500], at most 5 stop sequences). Errors are ``{"id",
"message"}``. Answers are deterministic:

* chat echoes ``"Echo: " + <last user text>`` (or of the tool results that end the
  conversation), cut by ``stop_sequences`` (``STOP_SEQUENCE``) or ``max_tokens``
  (``MAX_TOKENS``); with tools and a user message that mentions the weather (or
  ``tool_choice: REQUIRED``) it plans and calls the first tool (``TOOL_CALL``);
* usage: ``billed_units`` counts the conversation's non-system text, ``tokens`` adds the
  system prompt, tool definitions and a per-message template (so the two differ, as Cohere's
  do);
* streams are SSE ``event:``/``data:`` pairs in Cohere's order (``message-start``,
  ``content-*`` or ``tool-plan-delta``/``tool-call-*``, ``message-end`` with usage);
* an embedding is a unit vector from a hash of model, input type and text; a rerank scores
  each document by the share of the query's words it contains, one search unit per 100
  documents.

``create_cohere_app(keys)`` returns a Starlette app whose ``state`` has ``calls`` (``path``,
``body``, ``status``), ``faults`` (``(status, message)`` answered to the next requests) and
``api_keys`` (mutable).
"""

from unigate_sim.cohere.app import CHAT_MODELS, EMBED_MODELS, RERANK_MODELS, create_cohere_app
from unigate_sim.cohere.replies import chat_usage_of, count_tokens

__all__ = [
    "CHAT_MODELS",
    "EMBED_MODELS",
    "RERANK_MODELS",
    "chat_usage_of",
    "count_tokens",
    "create_cohere_app",
]
