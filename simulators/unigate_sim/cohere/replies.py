"""What the simulated Cohere models answer, and the usage they report."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from unigate_sim.openai.tokens import count_tokens, truncate_tokens

_WEATHER_RE: Final = re.compile(r"\bweather\b", re.IGNORECASE)
_WORD_RE: Final = re.compile(r"\w+")
#: Tokens of the prompt template around each message (``tokens`` counts them, billing not).
TEMPLATE_TOKENS_PER_MESSAGE: Final = 4
EMBED_DIMENSIONS: Final = 1024
DOCUMENTS_PER_SEARCH_UNIT: Final = 100

__all__ = ["ChatReply", "chat_reply", "chat_usage_of", "count_tokens"]


@dataclass(slots=True)
class ChatReply:
    text: str = ""
    tool_plan: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "COMPLETE"

    def output_tokens(self) -> int:
        calls = "".join(c["function"]["name"] + c["function"]["arguments"] for c in self.tool_calls)
        return count_tokens(self.text + self.tool_plan + calls)


def _example(schema: Any, text: str) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required")
        return {
            name: _example(sub, text)
            for name, sub in properties.items()
            if not isinstance(required, list) or name in required
        }
    if kind == "string":
        enum = schema.get("enum")
        return enum[0] if isinstance(enum, list) and enum else text
    return {"integer": 1, "number": 1, "boolean": True, "array": []}.get(str(kind))


def chat_reply(body: dict[str, Any], messages: list[dict[str, Any]]) -> ChatReply:
    """The answer to a validated chat request."""
    last = messages[-1]
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    wants_call = choice == "REQUIRED" or _WEATHER_RE.search(last["text"]) is not None
    if last["role"] == "user" and tools and choice != "NONE" and wants_call:
        function = tools[0]["function"]
        arguments = orjson.dumps(_example(function.get("parameters"), last["text"])).decode()
        call = {
            "id": f"{function['name']}_{secrets.token_hex(4)}",
            "type": "function",
            "function": {"name": function["name"], "arguments": arguments},
        }
        plan = f"I will call {function['name']} to answer this."
        return ChatReply(tool_plan=plan, tool_calls=[call], finish_reason="TOOL_CALL")
    if last["role"] == "tool":
        results = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            results.append(message["text"])
        text = "Echo: " + " ".join(reversed(results))
    else:
        text = "Echo: " + last["text"]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        text = orjson.dumps({"echo": text}).decode()
    reason = "COMPLETE"
    for stop in body.get("stop_sequences") or []:
        if stop and stop in text:
            text, reason = text[: text.index(stop)], "STOP_SEQUENCE"
    if body.get("max_tokens") is not None:
        text, cut = truncate_tokens(text, int(body["max_tokens"]))
        reason = "MAX_TOKENS" if cut else reason
    return ChatReply(text=text, finish_reason=reason)


def chat_usage_of(
    body: dict[str, Any], messages: list[dict[str, Any]], output_tokens: int
) -> dict[str, Any]:
    """Cohere's ``usage``: ``billed_units`` (the conversation's text without system prompts)
    and ``tokens`` (that, plus system prompts, tool definitions and the template)."""
    billed = sum(count_tokens(m["text"]) for m in messages if m["role"] != "system")
    system = sum(count_tokens(m["text"]) for m in messages if m["role"] == "system")
    tools = count_tokens(orjson.dumps(body["tools"]).decode()) if body.get("tools") else 0
    template = TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
    return {
        "billed_units": {"input_tokens": billed, "output_tokens": output_tokens},
        "tokens": {
            "input_tokens": billed + system + tools + template,
            "output_tokens": output_tokens,
        },
    }


def embedding(model: str, input_type: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    seed = f"{model}\0{input_type}\0{text}".encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        raw.extend(v / 2**31 - 1.0 for v in struct.unpack(">8I", digest))
        counter += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def relevance(query: str, document: str) -> float:
    """The share of the query's distinct words the document contains."""
    wanted = {w.lower() for w in _WORD_RE.findall(query)}
    found = {w.lower() for w in _WORD_RE.findall(document)}
    return len(wanted & found) / len(wanted) if wanted else 0.0
