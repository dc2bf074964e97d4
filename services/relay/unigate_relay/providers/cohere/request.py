"""OpenAI requests as Cohere v2 request bodies.

Chat (https://docs.cohere.com/reference/chat): messages with roles system/user/assistant/tool
(an assistant's calls as ``tool_calls`` with its text as ``tool_plan``; a tool result with
``tool_call_id``), ``tools`` in OpenAI's function shape, ``tool_choice`` ``REQUIRED``/``NONE``,
``response_format`` (``json_object``, with ``json_schema``), ``stop_sequences``,
``max_tokens``, ``temperature``, ``p``, ``k``, ``seed``, penalties. Embed
(https://docs.cohere.com/reference/embed): ``texts``, ``input_type``, ``embedding_types``.
Rerank (https://docs.cohere.com/reference/rerank): ``query``, ``documents`` (strings),
``top_n``, ``max_tokens_per_doc``.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

# What an embedding is for, when neither the client nor the channel says (Cohere requires it
# for v3+ models; LiteLLM's default too).
DEFAULT_INPUT_TYPE = "search_document"
INPUT_TYPES = frozenset(
    {"search_document", "search_query", "classification", "clustering", "image"}
)


class Unsupported(ValueError):
    """The request asks for something Cohere's v2 API cannot do."""


def _text(content: Any, role: str) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported(f"Only text content is supported in a {role} message.") from None
    except NotContent:
        raise Unsupported(f"Invalid content in a {role} message.") from None


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text(content, "user")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "image_url", "image_url": {"url": str(url or "")}})
        else:
            raise Unsupported(f"Cohere does not take `{kind}` content parts.")
    return parts


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise Unsupported("Each message must be an object.")
    role = message.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": _text(message.get("content"), str(role))}
    if role == "user":
        return {"role": "user", "content": _user_content(message.get("content"))}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = _text(message.get("content"), "assistant")
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            out["tool_calls"] = [
                {
                    "id": str(call.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str((call.get("function") or {}).get("name") or ""),
                        "arguments": str((call.get("function") or {}).get("arguments") or "{}"),
                    },
                }
                for call in calls
                if isinstance(call, dict)
            ]
            if text:
                # Cohere's text before its calls is the tool plan (as our answers map it back).
                out["tool_plan"] = text
        else:
            out["content"] = text
        return out
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": str(message.get("tool_call_id") or ""),
            "content": _text(message.get("content"), "tool"),
        }
    raise Unsupported(f"Cohere has no `{role}` role.")


def _tools(request: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": tool["function"]}
        for tool in request.get("tools") or []
        if isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
    ]
    choice = request.get("tool_choice")
    if choice in (None, "auto"):
        return tools, None
    if choice == "none":
        return tools, "NONE"
    if choice == "required":
        return tools, "REQUIRED"
    if isinstance(choice, dict):
        # A named function: offer only that one and require a call.
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        chosen = [tool for tool in tools if tool["function"].get("name") == name]
        if not chosen:
            raise Unsupported(f"`tool_choice` names `{name}`, which is not among `tools`.")
        return chosen, "REQUIRED"
    raise Unsupported("Invalid `tool_choice`.")


def chat_body(request: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """The ``/v2/chat`` body for an OpenAI chat request."""
    if request.get("n") not in (None, 1):
        raise Unsupported("Cohere returns one choice; `n` must be 1.")
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise Unsupported("`messages` must be an array.")
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages]}
    if stream:
        body["stream"] = True
    tools, choice = _tools(request)
    if tools:
        body["tools"] = tools
    if choice:
        body["tool_choice"] = choice
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if isinstance(request.get("top_p"), int | float):
        # Cohere takes p in [0.01, 0.99] only; OpenAI's 1.0 ("no nucleus cut") is common.
        body["p"] = min(max(float(request["top_p"]), 0.01), 0.99)
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_k", "k"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ):
        if request.get(ours) is not None:
            body[theirs] = request[ours]
    stop = request.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = stop
    if request.get("logprobs"):
        body["logprobs"] = True
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        body["response_format"] = {"type": "json_object", "json_schema": schema or {}}
    return body


def embed_body(request: dict[str, Any], model: str, config: dict[str, Any]) -> dict[str, Any]:
    """The ``/v2/embed`` body: floats always (base64 is encoded by us, as OpenAI does it)."""
    raw = request.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Unsupported("Cohere embeds text: `input` must be a string or an array of strings.")
    input_type = request.get("input_type") or config.get("input_type") or DEFAULT_INPUT_TYPE
    if input_type not in INPUT_TYPES:
        raise Unsupported(f"`input_type` must be one of {', '.join(sorted(INPUT_TYPES))}.")
    body: dict[str, Any] = {
        "model": model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    }
    if request.get("dimensions") is not None:
        body["output_dimension"] = request["dimensions"]
    return body


def rerank_body(request: dict[str, Any], model: str) -> tuple[dict[str, Any], list[str]]:
    """The ``/v2/rerank`` body and the documents' texts (for ``return_documents``)."""
    documents = []
    for document in request.get("documents") or []:
        if isinstance(document, str):
            documents.append(document)
        elif isinstance(document, dict) and isinstance(document.get("text"), str):
            documents.append(document["text"])
        else:
            raise Unsupported("Cohere reranks text: each document must be a string or {text}.")
    body: dict[str, Any] = {"model": model, "query": request.get("query"), "documents": documents}
    if request.get("top_n") is not None:
        body["top_n"] = request["top_n"]
    if request.get("max_tokens_per_doc") is not None:
        body["max_tokens_per_doc"] = request["max_tokens_per_doc"]
    return body, documents
