"""What the simulated Claude answers to a validated request: content blocks and a stop reason.

As the OpenAI simulator: ``"Echo: "`` + the text of the last user turn (or of its tool
results); with tools offered it calls one when ``tool_choice`` forces it (``any``: the first,
``tool``: the named one; also when answering tool results, as Claude must) or, under
``auto``, when the user mentions the weather; a user who
asks for "all tools" gets one call per tool (parallel tool use, unless
``disable_parallel_tool_use``). Tool inputs are made up from the schema as the OpenAI
simulator makes up arguments. With extended thinking the answer opens with a signed
``thinking`` block. ``stop_sequences`` cut the text (``stop_sequence``); ``max_tokens`` cuts
thinking and text (``max_tokens``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

import orjson

from unigate_sim.anthropic.blocks import thinking_signature
from unigate_sim.anthropic.request import MessagesRequest
from unigate_sim.openai.chat_reply import _example_value
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import count_tokens, truncate_tokens

_WEATHER: Final = re.compile(r"\bweather\b", re.IGNORECASE)
_ALL_TOOLS: Final = re.compile(r"\ball tools\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer's content blocks, stop reason and output token count."""

    content: list[JSONObject] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    output_tokens: int = 0


def _text(blocks: list[JSONObject]) -> str:
    texts = []
    for block in blocks:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.extend(b["text"] for b in content or [] if b["type"] == "text")
    return " ".join(texts)


def _tool_id(request: MessagesRequest, name: str, position: int) -> str:
    seed = orjson.dumps([request.model, request.messages, name, position])
    return "toolu_" + hashlib.sha256(seed).hexdigest()[:24]


def _tool_calls(request: MessagesRequest, text: str, answering_tools: bool) -> list[JSONObject]:
    choice = request.tool_choice
    tools = request.tools
    if not tools or choice["type"] == "none":
        return []
    if choice["type"] == "tool":
        chosen = [t for t in tools if t["name"] == choice["name"]]
    elif answering_tools:
        # Answering tool results, Claude calls again only when a tool is forced.
        chosen = tools[:1] if choice["type"] == "any" else []
    elif _ALL_TOOLS.search(text):
        chosen = tools[:1] if choice.get("disable_parallel_tool_use") else list(tools)
    elif choice["type"] == "any" or _WEATHER.search(text):
        chosen = tools[:1]
    else:
        chosen = []
    return [
        {
            "type": "tool_use",
            "id": _tool_id(request, tool["name"], i),
            "name": tool["name"],
            "input": _example_value(tool["input_schema"], text) or {},
        }
        for i, tool in enumerate(chosen)
    ]


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    found = [(text.find(s), s) for s in stops if s in text]
    if not found:
        return text, None
    position, stop = min(found)
    return text[:position], stop


def plan_reply(request: MessagesRequest) -> Reply:
    """Decide the simulated answer to a validated request."""
    last_user = next(m for m in reversed(request.messages) if m["role"] == "user")
    answering_tools = any(b["type"] == "tool_result" for b in last_user["content"])
    text = _text(last_user["content"])
    content: list[JSONObject] = []
    budget = request.max_tokens
    if request.thinking_budget:
        thought, _ = truncate_tokens(
            "Thinking about: " + text, min(request.thinking_budget, budget)
        )
        content.append(
            {"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)}
        )
        budget -= count_tokens(thought)
    calls = _tool_calls(request, text, answering_tools)
    if calls:
        used = sum(
            count_tokens(c["name"]) + count_tokens(orjson.dumps(c["input"]).decode()) for c in calls
        )
        return Reply(content + calls, "tool_use", None, request.max_tokens - budget + used)
    answer, stop = _cut_at_stop("Echo: " + text, request.stop_sequences)
    answer, truncated = truncate_tokens(answer, max(budget, 0))
    if answer:
        content.append({"type": "text", "text": answer})
    output = request.max_tokens - budget + count_tokens(answer)
    if truncated:
        return Reply(content, "max_tokens", None, output)
    if stop is not None:
        return Reply(content, "stop_sequence", stop, output)
    return Reply(content, "end_turn", None, output)
