"""A channel's ``system_prompt``: instructions the operator puts before every conversation
sent through that channel, whatever the provider.

It is prepended, never substituted: the client's own system message still follows it, as
the client wrote it. Applied once in the relay, before the provider's adapter converts the
request, so every family gets it in its own place (Anthropic's ``system``, Gemini's
``systemInstruction``, ...), on the Gemini-native route too.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.gemini_endpoints import GENERATE
from unigate_relay.providers.upstream import decoded


def with_system_prompt(endpoint: str, body: bytes, prompt: str) -> bytes:
    """``body`` (a JSON request to ``endpoint``) with ``prompt`` put before the client's
    instructions; unchanged for endpoints without a conversation or a body we cannot read
    (the provider will refuse that body on its own)."""
    if not prompt or endpoint not in ("chat.completions", "responses", "messages", GENERATE):
        return body
    request = decoded(body)
    if not isinstance(request, dict):
        return body
    if endpoint == "chat.completions":
        messages = request.get("messages")
        if not isinstance(messages, list):
            return body
        request["messages"] = [{"role": "system", "content": prompt}, *messages]
    elif endpoint == GENERATE:  # Gemini: a Content whose text parts are the instructions
        instruction = request.get("systemInstruction")
        parts = instruction.get("parts") if isinstance(instruction, dict) else None
        kept = [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
        request["systemInstruction"] = {"parts": [{"text": prompt}, *kept]}
    elif endpoint == "responses":
        request["instructions"] = _joined(prompt, request.get("instructions"))
    else:  # Anthropic Messages: a string or a list of text blocks
        system: Any = request.get("system")
        if isinstance(system, list):
            request["system"] = [{"type": "text", "text": prompt}, *system]
        else:
            request["system"] = _joined(prompt, system)
    return orjson.dumps(request)


def _joined(prompt: str, existing: Any) -> str:
    return f"{prompt}\n\n{existing}" if isinstance(existing, str) and existing else prompt
