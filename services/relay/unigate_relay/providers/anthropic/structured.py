"""OpenAI's ``response_format`` on Claude, which has no such option: a forced tool.

As LiteLLM maps it: ``json_schema`` becomes a tool whose ``input_schema`` is the client's
schema and ``tool_choice`` forces that tool, so Claude answers with a ``tool_use`` block whose
``input`` is an object shaped by the schema; ``json_object`` does the same with a schema that
admits any object. The answer's (or stream's) ``tool_use`` of that tool is then returned as
the assistant message's ``content`` (its ``input`` serialized), with ``finish_reason``
``stop``, which is what ``chat.completions.parse`` and LangChain's ``with_structured_output``
read. Usage is Claude's own (the tool definition is part of the prompt Anthropic bills).

With tools of the client's own the response tool is offered beside them and Claude must call
one (``any``), unless the client chose otherwise: a call of the client's tools comes back as a
tool call, an answer through the response tool as content. Extended thinking cannot run with a
forced tool (Anthropic refuses the pair), so a request for structured output goes without it.
``text`` (or no ``response_format``) changes nothing.
"""

from __future__ import annotations

from typing import Any, Final

from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject

#: The response tool's name (LiteLLM's, so prompts written against it behave the same).
RESPONSE_TOOL: Final = "json_tool_call"
_DESCRIPTION: Final = "Respond with a JSON object that follows this tool's input schema."
_ANY_OBJECT: Final[JSONObject] = {"type": "object", "additionalProperties": True}


def response_schema(chat: JSONObject) -> JSONObject | None:
    """The JSON Schema the answer must follow (any object for ``json_object``), or None when
    the client asked for plain text. Raises ConversionError for a malformed format."""
    fmt = chat.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise ConversionError("`response_format` must be an object.", "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(_ANY_OBJECT)
    if kind != "json_schema":
        raise ConversionError(
            f"`response_format.type` must be 'text', 'json_object' or 'json_schema', not {kind!r}.",
            "response_format.type",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise ConversionError(
            "`response_format.json_schema` must be an object.", "response_format.json_schema"
        )
    schema = spec.get("schema")
    if schema is None:
        return dict(_ANY_OBJECT)
    if not isinstance(schema, dict):
        raise ConversionError(
            "`response_format.json_schema.schema` must be an object.",
            "response_format.json_schema.schema",
        )
    if schema.get("type", "object") != "object":
        # A tool's input is always an object: Claude cannot answer a bare array or scalar.
        raise ConversionError(
            "Claude can return structured output only as a JSON object: "
            "`response_format.json_schema.schema.type` must be 'object'.",
            "response_format.json_schema.schema",
        )
    return {**schema, "type": "object"}


def response_tool(chat: JSONObject, schema: JSONObject) -> JSONObject:
    """The Anthropic tool that carries the structured answer."""
    spec = (chat.get("response_format") or {}).get("json_schema")
    description = spec.get("description") if isinstance(spec, dict) else None
    return {
        "name": RESPONSE_TOOL,
        "description": description
        if isinstance(description, str) and description
        else _DESCRIPTION,
        "input_schema": schema,
    }


def apply_response_format(chat: JSONObject, out: JSONObject) -> bool:
    """Add the response tool to Messages request ``out`` for chat request ``chat``; True when
    the answer's response tool call is to be returned as content."""
    schema = response_schema(chat)
    if schema is None:
        return False
    tools: list[JSONObject] = out.setdefault("tools", [])
    if any(t.get("name") == RESPONSE_TOOL for t in tools):
        raise ConversionError(
            f"A tool may not be named `{RESPONSE_TOOL}` together with `response_format`.", "tools"
        )
    own_tools = bool(tools)
    tools.append(response_tool(chat, schema))
    choice: Any = out.get("tool_choice")
    if not own_tools or choice is None:
        forced: JSONObject = (
            {"type": "tool", "name": RESPONSE_TOOL} if not own_tools else {"type": "any"}
        )
        if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
            forced["disable_parallel_tool_use"] = True
        out["tool_choice"] = forced
    return True


def content_tool(chat: JSONObject) -> str | None:
    """The tool whose call is the answer's content, for a chat request already converted by
    ``chat_to_messages`` (which refused a malformed ``response_format``)."""
    return RESPONSE_TOOL if response_schema(chat) is not None else None
