"""The PaLM API's chat method (``generateMessage``, v1beta2), used as an OpenAI chat model.

Reference: Google's PaLM API v1beta2 ("models.generateMessage", "MessagePrompt",
"Message", "GenerateMessageResponse"): ``POST {base}/v1beta2/models/chat-bison-001:
generateMessage`` with the key in ``x-goog-api-key`` (One API's palm adaptor; Google also
takes ``?key=``). The body is ``{"prompt": {"context", "examples", "messages": [{"author",
"content"}]}, "temperature" (0-1), "candidateCount" (1-8), "topP", "topK"}``; the answer
``{"candidates": [{"author", "content", "citationMetadata"}], "messages", "filters":
[{"reason", "message"}]}``, with no token counts. PaLM's chat has no output limit, stop
sequences, penalties or tools.

One API's mapping, kept: user turns are author ``"0"`` and every other turn author ``"1"``;
its model name ``PaLM-2`` calls ``chat-bison-001``. Unlike One API, a system (or developer)
message goes to the prompt's ``context`` ("text that should be provided to the model first
to ground the response"), consecutive turns of one author are merged (PaLM's turns alternate
between two authors), ``max_tokens`` is not sent as ``topK`` (One API's slip; PaLM has no
output limit, the relay's output bound cuts a stream that runs past it) and what PaLM cannot
take (tools, tool turns, non-text content, ``n`` above 8) is the client's 400.
"""

from __future__ import annotations

from typing import Any, Final

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
CHAT_MODEL: Final = "chat-bison-001"
# One API's model name for the PaLM channel type (its adaptor calls chat-bison-001 for it).
MODEL_ALIASES: Final = {"PaLM-2": CHAT_MODEL}
USER_AUTHOR: Final = "0"
MODEL_AUTHOR: Final = "1"
MAX_CANDIDATES: Final = 8
_CONTEXT_ROLES: Final = frozenset({"system", "developer"})
# OpenAI chat fields that ask for something PaLM's chat cannot do.
_REFUSED_FIELDS: Final = ("tools", "functions")


class Unsupported(ValueError):
    """A chat request PaLM cannot serve as asked."""


def message_path(upstream_model: str) -> str:
    model = MODEL_ALIASES.get(upstream_model, upstream_model)
    return f"/v1beta2/models/{model}:generateMessage"


def _text(role: str, content: Any) -> str:
    try:
        return text_only(content, none_is_empty=role == "assistant")
    except NonTextPart:
        raise Unsupported(f"PaLM takes text only: a {role} message has a non-text part.") from None
    except NotContent:
        raise Unsupported(f"A {role} message's content must be a string or text parts.") from None


def _number(chat: dict[str, Any], name: str) -> float | None:
    value = chat.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unsupported(f"`{name}` must be a number.")
    return float(value)


def _sampling(chat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    temperature = _number(chat, "temperature")
    if temperature is not None:
        # OpenAI's range is 0-2, PaLM's 0-1.
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    top_p = _number(chat, "top_p")
    if top_p is not None:
        out["topP"] = top_p
    top_k = chat.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise Unsupported("`top_k` must be a positive integer.")
        out["topK"] = top_k
    n = chat.get("n")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CANDIDATES:
            raise Unsupported(f"PaLM answers 1 to {MAX_CANDIDATES} candidates: `n` is {n!r}.")
        out["candidateCount"] = n
    return out


def message_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The ``generateMessage`` body for an OpenAI chat request."""
    for name in _REFUSED_FIELDS:
        if chat.get(name):
            raise Unsupported(f"PaLM's chat has no tools: `{name}` cannot be served.")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unsupported("`messages` must be a non-empty array.")
    context: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise Unsupported("Each message must be an object.")
        role = message.get("role")
        if role in _CONTEXT_ROLES:
            context.append(_text(str(role), message.get("content")))
            continue
        if role not in ("user", "assistant"):
            raise Unsupported(f"PaLM's chat has no {role!r} turns (no tools or functions).")
        if message.get("tool_calls") or message.get("function_call"):
            raise Unsupported("PaLM's chat has no tools: an assistant turn calls one.")
        author = USER_AUTHOR if role == "user" else MODEL_AUTHOR
        text = _text(role, message.get("content"))
        if turns and turns[-1]["author"] == author:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"author": author, "content": text})
    if not turns:
        raise Unsupported("PaLM needs at least one user or assistant message.")
    prompt: dict[str, Any] = {"messages": turns}
    if context:
        prompt["context"] = "\n\n".join(context)
    return {"prompt": prompt, **_sampling(chat)}


def candidate_texts(answer: dict[str, Any]) -> list[str] | None:
    """The text of each candidate, or None when the answer has no readable candidate list
    (absent or empty: a blocked prompt, see :func:`filtered`)."""
    candidates = answer.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return None
    texts = []
    for candidate in candidates:
        if not isinstance(candidate, dict) or not isinstance(candidate.get("content"), str):
            return None
        texts.append(candidate["content"])
    return texts


def filtered(answer: dict[str, Any]) -> bool:
    """Whether PaLM withheld its answer: no candidates and content ``filters`` saying why."""
    filters = answer.get("filters")
    return not answer.get("candidates") and isinstance(filters, list) and bool(filters)
