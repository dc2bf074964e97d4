"""Structured output for OpenAI-like providers with JSON mode only.

Such a provider (DeepSeek: its "JSON Output" guide) takes ``response_format: {"type":
"json_object"}`` and refuses ``json_schema``. As LiteLLM and other gateways do, a
``json_schema`` request goes to it as ``json_object`` with the schema stated in a system
message: the model is told the shape, and JSON mode guarantees that the answer parses. (Such
providers also demand that the prompt mention "json", which that message does.) The schema
itself is not enforced by the provider; the client's parser checks it, as it would anyway.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

_INSTRUCTION: Final = (
    "Answer with a single JSON object and nothing else. It must conform to this JSON Schema:\n"
)


def needs_json_object(body: bytes) -> bool:
    """Whether a chat body may ask for a ``json_schema`` format (a cheap test before parsing)."""
    return b'"json_schema"' in body


def as_json_object(body: dict[str, Any]) -> None:
    """Rewrite a ``json_schema`` ``response_format`` of chat request ``body`` in place as
    ``json_object`` plus a system message carrying the schema (anything else: unchanged)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    body["response_format"] = {"type": "json_object"}
    text = _INSTRUCTION + orjson.dumps(schema if isinstance(schema, dict) else {}).decode()
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = [{"role": "system", "content": text}, *messages]
