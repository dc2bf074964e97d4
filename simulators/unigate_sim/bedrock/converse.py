"""Bedrock's Converse and ConverseStream for the model families that are not Claude.

Reference: AWS Bedrock runtime API "Converse" / "ConverseStream", "Supported models and model
features" (which models take system prompts, tool use, tool use while streaming, a forced
tool choice) and the ValidationException messages clients report: a conversation must start
with a user message and alternate roles; ``toolUse``/``toolResult`` blocks need a
``toolConfig``; a ``toolResult`` must answer a ``toolUse`` of the turn before; blank text is
refused; Smithy's constraint messages (``1 validation error detected: Value at '…' failed to
satisfy constraint: …``) for ranges and patterns. A stream is the binary event stream with one
message per ``ConverseStreamOutput`` member (``:event-type`` = the member's name, its JSON as
payload, padded with ``p``), ending with ``messageStop`` and ``metadata`` (usage, metrics).

The simulated model echoes as the other simulators do (``unigate_sim.echo_reply``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from unigate_sim.bedrock.errors import BedrockError
from unigate_sim.bedrock.eventstream import converse_event
from unigate_sim.echo_reply import Reply, prompt_tokens, reply
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import count_tokens, token_pieces, truncate_tokens


@dataclass(frozen=True, slots=True)
class ConverseModel:
    """What a model supports through Converse (AWS's model features table)."""

    system: bool = True
    tools: bool = True
    stream_tools: bool = False
    forced_tool: bool = False


CONVERSE_MODELS: Final[dict[str, ConverseModel]] = {
    "meta.llama3-8b-instruct-v1:0": ConverseModel(tools=False),
    "meta.llama3-70b-instruct-v1:0": ConverseModel(tools=False),
    "meta.llama3-1-70b-instruct-v1:0": ConverseModel(),
    "meta.llama3-2-3b-instruct-v1:0": ConverseModel(),
    "mistral.mistral-7b-instruct-v0:2": ConverseModel(system=False, tools=False),
    "mistral.mistral-large-2407-v1:0": ConverseModel(forced_tool=True),
    "amazon.nova-micro-v1:0": ConverseModel(stream_tools=True, forced_tool=True),
    "amazon.nova-lite-v1:0": ConverseModel(stream_tools=True, forced_tool=True),
    "amazon.nova-pro-v1:0": ConverseModel(stream_tools=True, forced_tool=True),
    "cohere.command-r-v1:0": ConverseModel(),
    "cohere.command-r-plus-v1:0": ConverseModel(),
    "ai21.jamba-1-5-large-v1:0": ConverseModel(stream_tools=True),
}
_PROFILE: Final = re.compile(r"^(?:us|eu|apac)\.")
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_BLOCKS: Final = ("text", "image", "document", "toolUse", "toolResult", "reasoningContent")
_ALTERNATE: Final = (
    "A conversation must alternate between user and assistant roles. Make sure the "
    "conversation alternates between user and assistant roles and try again."
)


def converse_model(model_id: str) -> ConverseModel | None:
    """The Converse model of ``model_id``; None for a Claude id (served by the Anthropic
    half); Bedrock's 400 for an id it does not know."""
    bare = _PROFILE.sub("", model_id, count=1)
    if bare.startswith("anthropic."):
        return None
    found = CONVERSE_MODELS.get(bare)
    if found is None:
        raise BedrockError("ValidationException", "The provided model identifier is invalid.")
    return found


def _constraint(where: str, value: Any, rule: str) -> BedrockError:
    return BedrockError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
        f"constraint: {rule}",
    )


def _check_inference(config: Any) -> int | None:
    """The ``maxTokens`` asked for, after Converse's range checks."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise BedrockError("ValidationException", "inferenceConfig must be an object.")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _constraint(
            "inferenceConfig.maxTokens",
            max_tokens,
            "Member must have value greater than or equal to 1",
        )
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise _constraint(
                f"inferenceConfig.{name}", value, "Member must have value less than or equal to 1"
            )
    return max_tokens


def _tools(tool_config: Any, model: ConverseModel, *, stream: bool) -> list[tuple[str, Any]]:
    if tool_config is None:
        return []
    if not model.tools:
        raise BedrockError("ValidationException", "This model doesn't support tool use.")
    if stream and not model.stream_tools:
        raise BedrockError(
            "ValidationException", "This model doesn't support tool use in streaming mode."
        )
    tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
    if not isinstance(tools, list) or not tools:
        raise _constraint(
            "toolConfig.tools", tools, "Member must have length greater than or equal to 1"
        )
    out: list[tuple[str, Any]] = []
    for i, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _constraint(
                f"toolConfig.tools.{i + 1}.member.toolSpec.name",
                name,
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
            )
        schema = (spec.get("inputSchema") or {}).get("json") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BedrockError(
                "ValidationException", f"The toolSpec at toolConfig.tools.{i} has no inputSchema."
            )
        out.append((name, schema))
    choice = tool_config.get("toolChoice")
    if isinstance(choice, dict):
        for kind in ("any", "tool"):
            if kind in choice and not model.forced_tool:
                raise BedrockError(
                    "ValidationException",
                    f"This model doesn't support the toolConfig.toolChoice.{kind} field. Remove "
                    f"toolConfig.toolChoice.{kind} and try again.",
                )
        forced = (choice.get("tool") or {}).get("name") if "tool" in choice else None
        if forced is not None:
            out = [t for t in out if t[0] == forced]
            if not out:
                raise BedrockError(
                    "ValidationException", f"The tool {forced} in toolChoice is not in tools."
                )
    return out


def _block_text(block: JSONObject, where: str) -> str:
    """The text a block contributes to the prompt, after its own checks."""
    kinds = [k for k in block if k in _BLOCKS]
    if len(kinds) != 1 or len(block) != 1:
        raise BedrockError(
            "ValidationException",
            f"The content block at {where} must have exactly one member set.",
        )
    if "text" in block:
        text = block["text"]
        if not isinstance(text, str) or not text.strip():
            raise BedrockError(
                "ValidationException",
                f"The text field in the ContentBlock object at {where} is blank. Add text to the "
                "text field, and try again.",
            )
        return text
    if "toolUse" in block:
        use = block["toolUse"]
        return str(use.get("name", "")) + orjson.dumps(use.get("input")).decode()
    if "toolResult" in block:
        parts = block["toolResult"].get("content") or []
        return "".join(str(p.get("text") or orjson.dumps(p.get("json")).decode()) for p in parts)
    return ""


@dataclass(frozen=True, slots=True)
class Conversation:
    turns: list[tuple[str, str]]  # (role, text) incl. system, for counting
    last_role: str  # "user" or "tool" (a turn that ends with a tool result)
    last_text: str
    tools: list[tuple[str, Any]]
    max_tokens: int | None


def parse_converse(payload: Any, model: ConverseModel, *, stream: bool) -> Conversation:
    """A Converse body checked as Bedrock checks it."""
    if not isinstance(payload, dict):
        raise BedrockError("ValidationException", "Malformed input request.")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _constraint("messages", messages, "Member must not be null")
    turns: list[tuple[str, str]] = []
    system = payload.get("system")
    if system is not None:
        if not model.system:
            raise BedrockError(
                "ValidationException",
                "This model doesn't support system messages. Try again without a system message.",
            )
        turns += [("system", str(s.get("text") or "")) for s in system if isinstance(s, dict)]
    tools = _tools(payload.get("toolConfig"), model, stream=stream)
    max_tokens = _check_inference(payload.get("inferenceConfig"))
    open_uses: set[str] = set()
    last_role, last_text = "user", ""
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _constraint(
                f"messages.{i + 1}.member.role",
                role,
                "Member must satisfy enum value set: [user, assistant]",
            )
        if i == 0 and role != "user":
            raise BedrockError(
                "ValidationException",
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message.",
            )
        if i > 0 and messages[i - 1].get("role") == role:
            raise BedrockError("ValidationException", _ALTERNATE)
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _constraint(
                f"messages.{i + 1}.member.content", content, "Member must not be null"
            )
        uses: set[str] = set()
        results = 0
        texts = []
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if not isinstance(block, dict):
                raise BedrockError("ValidationException", f"Malformed content block at {where}.")
            if ("toolUse" in block or "toolResult" in block) and payload.get("toolConfig") is None:
                raise BedrockError(
                    "ValidationException",
                    "The toolConfig field must be defined when using toolUse and toolResult "
                    "content blocks.",
                )
            texts.append(_block_text(block, where))
            if "toolUse" in block:
                if role != "assistant":
                    raise BedrockError(
                        "ValidationException",
                        f"A toolUse block at {where} must be in an assistant message.",
                    )
                uses.add(str(block["toolUse"].get("toolUseId")))
            if "toolResult" in block:
                results += 1
                if str(block["toolResult"].get("toolUseId")) not in open_uses:
                    raise BedrockError(
                        "ValidationException",
                        f"The number of toolResult blocks at messages.{i}.content exceeds the "
                        "number of toolUse blocks of previous turn.",
                    )
                last_role, last_text = "tool", texts[-1]
            elif role == "user" and "text" in block:
                last_role, last_text = "user", texts[-1]
        open_uses = uses
        turns.append((role, "".join(texts)))
    return Conversation(turns, last_role, last_text, tools, max_tokens)


def _usage(conversation: Conversation, output_tokens: int) -> JSONObject:
    input_tokens = prompt_tokens(conversation.turns)
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """What the simulated model answers: text (maybe cut at maxTokens) or one tool call."""

    text: str
    call: Reply | None
    tool_use_id: str
    stop_reason: str
    usage: JSONObject


def plan_answer(conversation: Conversation) -> Answer:
    role = "user" if conversation.last_role == "user" else "tool"
    planned = reply(role, conversation.last_text, conversation.tools)
    tool_use_id = "tooluse_" + secrets.token_urlsafe(16)
    if planned.is_call:
        usage = _usage(conversation, planned.completion_tokens())
        return Answer("", planned, tool_use_id, "tool_use", usage)
    text, cut = planned.text, False
    if conversation.max_tokens is not None:
        text, cut = truncate_tokens(text, conversation.max_tokens)
    usage = _usage(conversation, count_tokens(text))
    return Answer(text, None, tool_use_id, "max_tokens" if cut else "end_turn", usage)


def converse_answer(answer: Answer, latency_ms: int) -> JSONObject:
    """Converse's JSON answer."""
    content: list[JSONObject] = []
    if answer.call is not None:
        content.append(
            {
                "toolUse": {
                    "toolUseId": answer.tool_use_id,
                    "name": answer.call.name,
                    "input": orjson.loads(answer.call.arguments),
                }
            }
        )
    else:
        content.append({"text": answer.text})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": answer.stop_reason,
        "usage": answer.usage,
        "metrics": {"latencyMs": latency_ms},
    }


async def converse_events(
    answer: Answer, latency_ms: int, fail_after: int | None = None, failure: bytes = b""
) -> AsyncIterator[bytes]:
    """ConverseStream's events, encoded; with ``fail_after``, ``failure`` (an exception
    message) replaces the event of that index and ends the stream."""
    for sent, event in enumerate(_events(answer, latency_ms)):
        if fail_after is not None and sent >= fail_after:
            yield failure
            return
        yield event


def _events(answer: Answer, latency_ms: int) -> Iterator[bytes]:
    yield converse_event("messageStart", {"role": "assistant"})
    if answer.call is not None:
        start = {"toolUse": {"toolUseId": answer.tool_use_id, "name": answer.call.name}}
        yield converse_event("contentBlockStart", {"contentBlockIndex": 0, "start": start})
        arguments = answer.call.arguments
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            yield converse_event(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}},
            )
    else:
        for piece in token_pieces(answer.text):
            yield converse_event(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
            )
    yield converse_event("contentBlockStop", {"contentBlockIndex": 0})
    yield converse_event("messageStop", {"stopReason": answer.stop_reason})
    yield converse_event("metadata", {"usage": answer.usage, "metrics": {"latencyMs": latency_ms}})
