"""An OpenAI chat-completions request as an Anthropic Messages request.

Plain functions on JSON objects, independent of any transport, so that every way of reaching
Claude (Anthropic's API, AWS Bedrock, Google Vertex) shares them.

What changes, per Anthropic's Messages reference:

* ``system`` and ``developer`` messages are lifted out of the conversation into the top-level
  ``system`` (joined by blank lines, in order);
* the conversation must alternate user/assistant turns starting with a user turn: consecutive
  turns of the same role are merged, tool results become ``tool_result`` blocks at the start
  of a user turn, and a conversation that would open with the assistant (or be empty) gets a
  ``"."`` user turn first (LiteLLM's choice);
* ``max_tokens`` is required: the client's ``max_completion_tokens`` / ``max_tokens``, else the
  model's output limit (OpenAI's "as long as the model likes");
* ``stop`` → ``stop_sequences``; ``temperature`` (OpenAI 0-2) is capped to Anthropic's 0-1;
  ``user`` → ``metadata.user_id``;
* tools → ``{name, description, input_schema}``; ``tool_choice`` auto/required/none/named →
  ``auto``/``any``/``none``/``tool``; ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``;
* image parts: ``data:`` URLs → base64 sources, http(s) URLs → url sources; PDF ``file`` parts
  → ``document`` blocks;
* ``reasoning_effort`` (or an Anthropic-style ``thinking`` object) → extended thinking with a
  budget; thinking forbids a forced tool choice and a temperature other than 1, so those are
  relaxed.

``response_format`` (``json_schema``, ``json_object``) becomes a forced tool (``structured``).
OpenAI options with no Anthropic counterpart (penalties, logprobs, seed, ...) are dropped;
``n`` > 1 is refused. Assistant ``reasoning_content`` is not sent back: Anthropic
only accepts thinking blocks with the signature it issued, which OpenAI clients do not keep.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from unigate_relay.providers.anthropic.models import max_output_tokens
from unigate_relay.providers.anthropic.structured import apply_response_format
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject

# Budgets for OpenAI's reasoning_effort levels; Anthropic's minimum budget is 1,024 tokens.
MIN_THINKING_BUDGET: Final = 1024
THINKING_BUDGETS: Final[dict[str, int]] = {"low": 1024, "medium": 4096, "high": 16384}
_NOT_ID: Final = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL: Final = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,(.*)$", re.DOTALL)
# A conversation opening with the assistant (or with nothing) starts with this user turn.
PLACEHOLDER_USER_TEXT: Final = "."


def text_of(content: Any) -> str:
    """The text of a string content or of its text (and refusal) parts, joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            value = part.get(part["type"])
            if isinstance(value, str):
                texts.append(value)
    return "\n".join(texts)


def image_source(url: str) -> JSONObject:
    """An Anthropic image ``source`` for an OpenAI image URL (inline data or a web URL)."""
    match = _DATA_URL.match(url)
    if match:
        return {
            "type": "base64",
            "media_type": match.group(1) or "image/png",
            "data": match.group(3),
        }
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise ConversionError("Invalid image URL: expected a data URL or an http(s) URL.", "messages")


def _part_block(part: Any, where: str) -> JSONObject | None:
    if not isinstance(part, dict):
        raise ConversionError(f"Invalid content part at {where}.", where)
    block = _part_block_of(part, where)
    if block is not None and isinstance(part.get("cache_control"), dict):
        # LiteLLM's extension: a part may mark an Anthropic prompt-cache breakpoint.
        block["cache_control"] = part["cache_control"]
    return block


def _part_block_of(part: JSONObject, where: str) -> JSONObject | None:
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        return {"type": "text", "text": text} if isinstance(text, str) and text.strip() else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise ConversionError(f"Invalid image_url at {where}.", where)
        return {"type": "image", "source": image_source(url)}
    if kind == "file":
        data = (part.get("file") or {}).get("file_data")
        match = _DATA_URL.match(data) if isinstance(data, str) else None
        if match and match.group(1) == "application/pdf":
            source = {"type": "base64", "media_type": "application/pdf", "data": match.group(3)}
            return {"type": "document", "source": source}
        raise ConversionError(
            f"Claude accepts only inline PDF files (file_data as a data URL) at {where}.", where
        )
    raise ConversionError(f"Content parts of type `{kind}` are not supported by Claude.", where)


def content_blocks(content: Any, where: str) -> list[JSONObject]:
    """Anthropic content blocks for an OpenAI message content (text with nothing but
    whitespace is left out: Anthropic refuses such text blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise ConversionError(f"Invalid content at {where}.", where)
    blocks = []
    for i, part in enumerate(content):
        block = _part_block(part, f"{where}.content[{i}]")
        if block is not None:
            blocks.append(block)
    return blocks


def tool_id(raw: Any) -> str:
    """A tool call id as Anthropic accepts it (``^[a-zA-Z0-9_-]+$``); the same id always maps
    the same way, so a call and its result still match."""
    text = raw if isinstance(raw, str) else ""
    return _NOT_ID.sub("_", text) or "toolu_"


def tool_input(arguments: Any, where: str) -> JSONObject:
    """A tool call's ``arguments`` (a JSON string) as the object Anthropic's ``input`` is."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str | bytes) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConversionError(f"Tool call arguments must be a JSON object at {where}.", where)
    return value


class _Conversation:
    """Turns being built: merges same-role neighbours, keeps tool results first."""

    def __init__(self) -> None:
        self.turns: list[JSONObject] = []
        # The id given to a legacy function_call, answered by the next "function" message.
        self.legacy_call_ids: list[str] = []

    def add(self, role: str, blocks: list[JSONObject]) -> None:
        if not blocks:
            return
        if self.turns and self.turns[-1]["role"] == role:
            previous: list[JSONObject] = self.turns[-1]["content"]
            if role == "user" and any(b["type"] == "tool_result" for b in blocks):
                # Tool results answer the assistant turn before: they go first in the turn.
                results = [b for b in blocks if b["type"] == "tool_result"]
                others = [b for b in blocks if b["type"] != "tool_result"]
                first = [b for b in previous if b["type"] == "tool_result"]
                rest = [b for b in previous if b["type"] != "tool_result"]
                self.turns[-1]["content"] = first + results + rest + others
            else:
                previous.extend(blocks)
            return
        self.turns.append({"role": role, "content": list(blocks)})

    def messages(self) -> list[JSONObject]:
        if not self.turns or self.turns[0]["role"] != "user":
            placeholder = {"type": "text", "text": PLACEHOLDER_USER_TEXT}
            self.turns.insert(0, {"role": "user", "content": [placeholder]})
        last = self.turns[-1]
        if last["role"] == "assistant":
            # Anthropic refuses a final (prefill) assistant turn ending in whitespace.
            blocks = last["content"]
            if blocks and blocks[-1]["type"] == "text":
                blocks[-1]["text"] = blocks[-1]["text"].rstrip()
                if not blocks[-1]["text"]:
                    blocks.pop()
            if not blocks:
                self.turns.pop()
        return self.turns


def _tool_result(message: JSONObject, tool_use_id: str, where: str) -> JSONObject:
    content = message.get("content")
    result: JSONObject = {"type": "tool_result", "tool_use_id": tool_id(tool_use_id)}
    if isinstance(content, list):
        blocks = content_blocks(content, where)
        if blocks:
            result["content"] = blocks
    elif isinstance(content, str) and content:
        result["content"] = content
    return result


def _assistant_blocks(message: JSONObject, where: str, conv: _Conversation) -> list[JSONObject]:
    blocks = content_blocks(message.get("content"), where)
    for j, call in enumerate(message.get("tool_calls") or []):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise ConversionError(f"Invalid tool call at {where}.tool_calls[{j}].", where)
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_id(call.get("id") or f"toolu_{len(conv.legacy_call_ids)}_{j}"),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments"), f"{where}.tool_calls[{j}]"),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        call_id = f"toolu_legacy_{len(conv.legacy_call_ids)}"
        conv.legacy_call_ids.append(call_id)
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": str(legacy.get("name") or ""),
                "input": tool_input(legacy.get("arguments"), f"{where}.function_call"),
            }
        )
    return blocks


def _system_blocks(content: Any, where: str) -> list[JSONObject]:
    if isinstance(content, list):
        return content_blocks([p for p in content if isinstance(p, dict)], where)
    return content_blocks(text_of(content), where)


def split_messages(messages: Any) -> tuple[str | list[JSONObject], list[JSONObject]]:
    """(the system prompt, the alternating Anthropic turns) of OpenAI ``messages``. The
    system prompt is the system texts joined by blank lines, or text blocks when one of them
    marks a cache breakpoint."""
    if not isinstance(messages, list):
        raise ConversionError("`messages` must be an array.", "messages")
    system: list[JSONObject] = []
    conv = _Conversation()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ConversionError(f"Invalid message at {where}.", where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(message.get("content"), where))
        elif role == "user":
            conv.add("user", content_blocks(message.get("content"), where))
        elif role == "assistant":
            conv.add("assistant", _assistant_blocks(message, where, conv))
        elif role == "tool":
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise ConversionError(f"Missing tool_call_id at {where}.", where)
            conv.add("user", [_tool_result(message, tool_call_id, where)])
        elif role == "function":
            if not conv.legacy_call_ids:
                raise ConversionError(f"A function message with no function call at {where}.")
            conv.add("user", [_tool_result(message, conv.legacy_call_ids[-1], where)])
        else:
            raise ConversionError(f"Unknown message role `{role}` at {where}.", where)
    if any("cache_control" in block for block in system):
        return system, conv.messages()
    return "\n\n".join(block["text"] for block in system), conv.messages()


def tool_definition(tool: Any, where: str) -> JSONObject:
    """An Anthropic custom tool for an OpenAI function tool (or legacy function)."""
    function = tool.get("function", tool) if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ConversionError(f"Invalid tool definition at {where}.", where)
    if isinstance(tool, dict) and tool.get("type", "function") != "function":
        raise ConversionError(f"Only function tools are supported by Claude ({where}).", where)
    schema = function.get("parameters")
    schema = dict(schema) if isinstance(schema, dict) else {"properties": {}}
    schema.setdefault("type", "object")
    out: JSONObject = {"name": function["name"], "input_schema": schema}
    if isinstance(function.get("description"), str) and function["description"]:
        out["description"] = function["description"]
    return out


def tool_choice(choice: Any, parallel: Any) -> JSONObject | None:
    """Anthropic's ``tool_choice`` for OpenAI's ``tool_choice`` and ``parallel_tool_calls``."""
    out: JSONObject | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or choice).get("name")
        if not isinstance(name, str):
            raise ConversionError("Invalid tool_choice.", "tool_choice")
        out = {"type": "tool", "name": name}
    else:
        raise ConversionError("Invalid tool_choice.", "tool_choice")
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def thinking_budget(chat: JSONObject) -> int:
    """The thinking budget a chat request asks for (0: no extended thinking)."""
    thinking = chat.get("thinking")
    if isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and isinstance(budget, int):
            return max(budget, MIN_THINKING_BUDGET)
        return 0
    effort = chat.get("reasoning_effort")
    return THINKING_BUDGETS.get(effort, 0) if isinstance(effort, str) else 0


def chat_to_messages(chat: JSONObject, model: str) -> JSONObject:
    """The Messages request for OpenAI chat request ``chat``, addressed to ``model``.

    Raises :class:`ConversionError` for a request Claude cannot serve as asked.
    """
    n = chat.get("n")
    if isinstance(n, int) and n > 1:
        raise ConversionError("Claude generates one choice per request: `n` must be 1.", "n")
    system, messages = split_messages(chat.get("messages"))
    out: JSONObject = {"model": model}
    if system:
        out["system"] = system
    out["messages"] = messages
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    out["max_tokens"] = max_tokens if isinstance(max_tokens, int) else max_output_tokens(model)
    stop = chat.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s.strip()]
    if stops:
        out["stop_sequences"] = stops
    temperature = chat.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    top_p = chat.get("top_p")
    if isinstance(top_p, int | float) and not isinstance(top_p, bool):
        out["top_p"] = float(top_p)
    if isinstance(chat.get("user"), str) and chat["user"]:
        out["metadata"] = {"user_id": chat["user"]}
    tools = chat.get("tools") or chat.get("functions")
    if isinstance(tools, list) and tools:
        out["tools"] = [tool_definition(t, f"tools[{i}]") for i, t in enumerate(tools)]
        choice = tool_choice(
            chat.get("tool_choice", chat.get("function_call")), chat.get("parallel_tool_calls")
        )
        if choice is not None:
            out["tool_choice"] = choice
    # Thinking cannot run beside the forced response tool: structured output wins.
    structured = apply_response_format(chat, out)
    budget = thinking_budget(chat)
    if budget and not structured:
        _enable_thinking(out, budget)
    if chat.get("stream") is True:
        out["stream"] = True
    return out


def _enable_thinking(out: JSONObject, budget: int) -> None:
    """Extended thinking, within Anthropic's rules: the budget stays below ``max_tokens``
    (skipped when ``max_tokens`` leaves no room for the minimum, or in a tool loop), the
    temperature is 1 and top_p at least 0.95, and the tool choice cannot force a tool."""
    max_tokens: int = out["max_tokens"]
    if max_tokens <= MIN_THINKING_BUDGET:
        return
    assistants = [m for m in out["messages"] if m["role"] == "assistant"]
    if assistants and any(b["type"] == "tool_use" for b in assistants[-1]["content"]):
        # Mid tool loop Anthropic wants the signed thinking block that led to the call, which
        # an OpenAI client never kept: this turn goes without thinking.
        return
    out["thinking"] = {"type": "enabled", "budget_tokens": min(budget, max_tokens - 1)}
    out.pop("temperature", None)
    if "top_p" in out:
        out["top_p"] = max(out["top_p"], 0.95)
    choice = out.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        out["tool_choice"] = {"type": "auto"}
