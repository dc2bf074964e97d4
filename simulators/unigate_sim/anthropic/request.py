"""Validating a Messages request (``POST /v1/messages`` and ``/v1/messages/count_tokens``)
as Anthropic's Messages reference describes it.

Beyond field types: roles alternate strictly, starting with the user; ``system`` exists only
at the top level; a conversation's messages are non-empty except a final (prefill) assistant
turn, which may not end in whitespace; every ``tool_result`` answers a ``tool_use`` of the
assistant turn just before it, and every ``tool_use`` followed by a turn is answered in it;
tools have a name and an object ``input_schema``; extended thinking needs a model that
thinks, a budget of at least 1,024 below ``max_tokens``, no forced tool choice, temperature 1
and top_p of at least 0.95, and a signed thinking block leading a final tool-using turn.
Cache breakpoints with the 1-hour lifetime come before any with the 5-minute one, in the
order tools → system → messages ("Prompt caching", mixing TTLs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from unigate_sim.anthropic.blocks import (
    ASSISTANT_BLOCKS,
    USER_BLOCKS,
    as_list,
    as_object,
    as_string,
    blocks_of,
    cache_control,
    cache_ttl,
    no_extra,
    required,
)
from unigate_sim.anthropic.errors import invalid
from unigate_sim.anthropic.models import ClaudeModel, model_spec
from unigate_sim.openai.json_types import JSONObject

_MESSAGE_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_k",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    }
)
_COUNT_FIELDS: Final = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking"}
)
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MIN_THINKING_BUDGET: Final = 1024


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A validated request, as the simulated model and the usage counting need it."""

    model: str
    spec: ClaudeModel
    messages: list[JSONObject]
    system: list[JSONObject]
    tools: list[JSONObject]
    max_tokens: int = 0
    tool_choice: JSONObject = field(default_factory=lambda: {"type": "auto"})
    thinking_budget: int = 0
    stop_sequences: tuple[str, ...] = ()
    stream: bool = False


def _number(payload: JSONObject, name: str, low: float, high: float) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name}: Input should be a valid number")
    if value < low:
        raise invalid(f"{name}: Input should be greater than or equal to {low:g}")
    if value > high:
        raise invalid(f"{name}: Input should be less than or equal to {high:g}")
    return float(value)


def _max_tokens(payload: JSONObject, spec: ClaudeModel, model: str) -> int:
    value = required(payload, "max_tokens")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("max_tokens: Input should be a valid integer")
    if value < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    if value > spec.max_output_tokens:
        raise invalid(
            f"max_tokens: {value} > {spec.max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {model}"
        )
    return value


def _system(value: Any) -> list[JSONObject]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}] if value else []
    return blocks_of(as_list(value, "system"), "system", ("text",))


def _messages(value: Any) -> list[JSONObject]:
    """The conversation, each turn's content as checked blocks."""
    items = as_list(value, "messages")
    if not items:
        raise invalid("messages: at least one message is required")
    turns: list[JSONObject] = []
    for i, item in enumerate(items):
        path = f"messages.{i}"
        message = as_object(item, path)
        role = required(message, "role", path)
        if role == "system":
            raise invalid(
                f'{path}.role: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise invalid(f"{path}.role: Input should be 'user' or 'assistant'")
        no_extra(message, frozenset({"role", "content"}), path)
        if i == 0 and role != "user":
            raise invalid('messages: first message must use the "user" role')
        if turns and turns[-1]["role"] == role:
            raise invalid(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        content = blocks_of(required(message, "content", path), f"{path}.content", allowed)
        final_assistant = role == "assistant" and i == len(items) - 1
        if not content and not final_assistant:
            raise invalid(
                f"{path}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        last = content[-1] if final_assistant and content else None
        if last is not None and last["type"] == "text" and last["text"] != last["text"].rstrip():
            raise invalid("messages: final assistant content cannot end with trailing whitespace")
        turns.append({"role": role, "content": content})
    _check_tool_pairs(turns)
    return turns


def _tool_use_ids(turn: JSONObject) -> list[str]:
    return [b["id"] for b in turn["content"] if b["type"] == "tool_use"]


def _check_tool_pairs(turns: Sequence[JSONObject]) -> None:
    """Each tool_result answers a tool_use of the previous turn; each tool_use followed by a
    turn is answered there."""
    for i, turn in enumerate(turns):
        if turn["role"] == "assistant":
            called = _tool_use_ids(turn)
            if called and i + 1 < len(turns):
                answered = {
                    b["tool_use_id"] for b in turns[i + 1]["content"] if b["type"] == "tool_result"
                }
                missing = [c for c in called if c not in answered]
                if missing:
                    raise invalid(
                        f"messages.{i + 1}: `tool_use` ids were found without `tool_result` "
                        f"blocks immediately after: {', '.join(missing)}. Each `tool_use` "
                        "block must have a corresponding `tool_result` block in the next "
                        "message."
                    )
            continue
        previous = _tool_use_ids(turns[i - 1]) if i > 0 else []
        for k, block in enumerate(turn["content"]):
            if block["type"] == "tool_result" and block["tool_use_id"] not in previous:
                raise invalid(
                    f"messages.{i}.content.{k}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )


def _tools(value: Any) -> list[JSONObject]:
    if value is None:
        return []
    tools = []
    names: set[str] = set()
    for i, item in enumerate(as_list(value, "tools")):
        path = f"tools.{i}"
        tool = as_object(item, path)
        if tool.get("type", "custom") != "custom":
            raise invalid(f"{path}.type: Input should be 'custom'")
        no_extra(
            tool, frozenset({"type", "name", "description", "input_schema", "cache_control"}), path
        )
        name = as_string(required(tool, "name", path), f"{path}.name")
        if not _TOOL_NAME.match(name):
            raise invalid(f"{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if name in names:
            raise invalid("tools: Tool names must be unique.")
        names.add(name)
        if tool.get("description") is not None:
            as_string(tool["description"], f"{path}.description")
        schema = as_object(required(tool, "input_schema", path), f"{path}.input_schema")
        if schema.get("type") != "object":
            raise invalid(f"{path}.input_schema.type: Input should be 'object'")
        cache_control(tool, path)
        tools.append(tool)
    return tools


def _check_ttl_order(
    tools: list[JSONObject], system: list[JSONObject], turns: list[JSONObject]
) -> None:
    """No 1-hour breakpoint after a 5-minute one: Anthropic reads the prompt as tools, system,
    messages, and a longer-lived entry must not depend on a shorter-lived prefix."""
    blocks = [(f"tools.{i}", tool) for i, tool in enumerate(tools)]
    blocks += [(f"system.{i}", block) for i, block in enumerate(system)]
    for i, turn in enumerate(turns):
        blocks += [(f"messages.{i}.content.{k}", b) for k, b in enumerate(turn["content"])]
    seen_5m = False
    for path, block in blocks:
        ttl = cache_ttl(block)
        if ttl == "1h" and seen_5m:
            raise invalid(
                f"{path}.cache_control.ttl: a ttl='1h' cache_control block must not come after "
                "a ttl='5m' cache_control block. Note that blocks are processed in the "
                "following order: `tools`, `system`, `messages`."
            )
        seen_5m = seen_5m or ttl == "5m"


def _tool_choice(value: Any, tools: Sequence[JSONObject]) -> JSONObject:
    if value is None:
        return {"type": "auto"}
    choice = as_object(value, "tool_choice")
    kind = required(choice, "type", "tool_choice")
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    allowed = {"type", "disable_parallel_tool_use"} | ({"name"} if kind == "tool" else set())
    no_extra(choice, frozenset(allowed), "tool_choice")
    if choice.get("disable_parallel_tool_use") is not None and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "tool":
        name = as_string(required(choice, "name", "tool_choice"), "tool_choice.name")
        if name not in {t["name"] for t in tools}:
            raise invalid(f"tool_choice: Tool '{name}' not found in provided tools")
    if kind in ("any", "tool") and not tools:
        raise invalid("tool_choice: tool_choice may only be specified while providing tools.")
    return choice


def _thinking(payload: JSONObject, spec: ClaudeModel, model: str, max_tokens: int) -> int:
    value = payload.get("thinking")
    if value is None:
        return 0
    thinking = as_object(value, "thinking")
    kind = required(thinking, "type", "thinking")
    if kind == "disabled":
        no_extra(thinking, frozenset({"type"}), "thinking")
        return 0
    if kind != "enabled":
        raise invalid("thinking.type: Input should be 'enabled' or 'disabled'")
    no_extra(thinking, frozenset({"type", "budget_tokens"}), "thinking")
    budget = required(thinking, "budget_tokens", "thinking")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < MIN_THINKING_BUDGET:
        raise invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if not spec.thinking:
        raise invalid(f"'{model}' does not support thinking.")
    if max_tokens and budget >= max_tokens:
        raise invalid(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
        )
    return budget


def _check_thinking_rules(payload: JSONObject, choice: JSONObject, turns: list[JSONObject]) -> None:
    if payload.get("temperature") is not None and payload["temperature"] != 1:
        raise invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility"
        )
    if payload.get("top_k") is not None:
        raise invalid("`top_k` is not supported when thinking is enabled.")
    if payload.get("top_p") is not None and payload["top_p"] < 0.95:
        raise invalid(
            "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
        )
    if choice["type"] in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    assistants = [t for t in turns if t["role"] == "assistant"]
    if assistants and _tool_use_ids(assistants[-1]):
        first = assistants[-1]["content"][0]["type"]
        if first not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"messages.{turns.index(assistants[-1])}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block."
            )


def _stop_sequences(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = tuple(
        as_string(s, f"stop_sequences.{i}") for i, s in enumerate(as_list(value, "stop_sequences"))
    )
    if any(not s.strip() for s in stops):
        raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
    return stops


def _metadata(value: Any) -> None:
    if value is None:
        return
    metadata = as_object(value, "metadata")
    no_extra(metadata, frozenset({"user_id"}), "metadata")
    if metadata.get("user_id") is not None:
        as_string(metadata["user_id"], "metadata.user_id")


def parse_messages_request(
    payload: Any, served: frozenset[str], *, counting: bool = False
) -> MessagesRequest:
    """Validate a Messages (or, with ``counting``, a count_tokens) request body."""
    if not isinstance(payload, dict):
        raise invalid("Input should be a valid dictionary")
    body: JSONObject = payload
    model = as_string(required(body, "model"), "model")
    no_extra(body, _COUNT_FIELDS if counting else _MESSAGE_FIELDS)
    turns = _messages(required(body, "messages"))
    spec = model_spec(model, served)
    max_tokens = 0 if counting else _max_tokens(body, spec, model)
    system = _system(body.get("system"))
    tools = _tools(body.get("tools"))
    _check_ttl_order(tools, system, turns)
    choice = _tool_choice(body.get("tool_choice"), tools)
    budget = _thinking(body, spec, model, max_tokens)
    if budget:
        _check_thinking_rules(body, choice, turns)
    if not counting:
        _number(body, "temperature", 0, 1)
        _number(body, "top_p", 0, 1)
        top_k = body.get("top_k")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0
        ):
            raise invalid("top_k: Input should be a valid integer greater than or equal to 0")
        _metadata(body.get("metadata"))
        if body.get("stream") is not None and not isinstance(body["stream"], bool):
            raise invalid("stream: Input should be a valid boolean")
    return MessagesRequest(
        model=model,
        spec=spec,
        messages=turns,
        system=system,
        tools=tools,
        max_tokens=max_tokens,
        tool_choice=choice,
        thinking_budget=budget,
        stop_sequences=() if counting else _stop_sequences(body.get("stop_sequences")),
        stream=body.get("stream") is True,
    )
