"""What the simulated models of the native-protocol simulators (``baidu``, ``hunyuan``,
``dashscope``) answer, the same way the OpenAI simulator does: ``"Echo: "`` and the text of
the last user message, or of the tool result the conversation ends with; offered tools and
a user message about the weather, a call of the first tool instead. Tokens are counted with
the OpenAI simulator's functions, so a test can predict usage exactly."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from unigate_sim.openai.tokens import count_prompt_tokens, count_tokens

_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][\w-]*")


@dataclass(frozen=True, slots=True)
class Reply:
    """A text answer, or a call of ``name`` with JSON ``arguments``."""

    text: str = ""
    name: str = ""
    arguments: str = ""

    @property
    def is_call(self) -> bool:
        return bool(self.name)

    def completion_tokens(self) -> int:
        if self.is_call:
            return count_tokens(self.name) + count_tokens(self.arguments)
        return count_tokens(self.text)


def arguments_for(schema: Any, text: str) -> str:
    """Arguments for a function with JSON ``schema``: each required string property is the
    last word of ``text`` (the city, in "what is the weather in Paris")."""
    words = _WORD.findall(text)
    value = words[-1] if words else text
    properties = schema.get("properties") if isinstance(schema, dict) else None
    required = schema.get("required") if isinstance(schema, dict) else None
    out: dict[str, Any] = {}
    if isinstance(properties, dict):
        for name, sub in properties.items():
            if isinstance(required, list) and name not in required:
                continue
            kind = sub.get("type") if isinstance(sub, dict) else None
            enum = sub.get("enum") if isinstance(sub, dict) else None
            if isinstance(enum, list) and enum:
                out[name] = enum[0]
            elif kind in ("integer", "number"):
                out[name] = 1
            elif kind == "boolean":
                out[name] = True
            else:
                out[name] = value
    return orjson.dumps(out).decode()


def reply(last_role: str, last_text: str, tools: list[tuple[str, Any]]) -> Reply:
    """The answer to a conversation whose last message has ``last_role`` and ``last_text``,
    with ``tools`` offered as (name, parameters schema) pairs."""
    if last_role == "user" and tools and _WEATHER.search(last_text):
        name, schema = tools[0]
        return Reply(name=name, arguments=arguments_for(schema, last_text))
    return Reply(text="Echo: " + last_text)


def prompt_tokens(messages: list[tuple[str, str]]) -> int:
    """Prompt tokens of (role, text) messages, by the OpenAI simulator's accounting."""
    return count_prompt_tokens([{"role": role, "content": text} for role, text in messages])
