"""Replicate's predictions API for language models.

Reference: Replicate HTTP API "Create a prediction using an official model" (``POST
https://api.replicate.com/v1/models/{owner}/{name}/predictions``, ``Authorization: Bearer
<token>``, ``{"input": {...}, "stream": bool}``; ``Prefer: wait`` holds the request open up
to 60 s for the finished prediction), "Get a prediction" (``GET urls.get``), the prediction
object (``status``: ``starting``, ``processing``, ``succeeded``, ``failed``, ``canceled``;
``output``: a language model's tokens as an array of strings; ``metrics``:
``input_token_count``, ``output_token_count``; ``error``) and "Streaming output" (``GET
urls.stream`` with ``Accept: text/event-stream``: ``output`` events carry text, ``error``
events ``{"detail"}``, and ``done`` ends it). Errors are problem details
``{"title", "detail", "status"}``.

The input follows Replicate's language models (Meta Llama, Mistral …): ``prompt``,
``system_prompt``, ``max_tokens``, ``temperature``, ``top_p``, penalties. A conversation of
more than one user turn becomes One API's ``role: content`` lines in ``prompt``.
"""

from __future__ import annotations

from typing import Any, Final

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

DEFAULT_BASE_URL: Final = "https://api.replicate.com"
DEFAULT_MAX_TOKENS: Final = 500  # One API's default when the client sets none
FINAL: Final = frozenset({"succeeded", "failed", "canceled"})


class Unsupported(ValueError):
    """A chat request a Replicate language model cannot take."""


def _text(content: Any, where: str) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported(f"Replicate language models take text only ({where}).") from None
    except NotContent:
        raise Unsupported(f"Invalid content at {where}.") from None


def predictions_path(model: str) -> str:
    owner, _, name = model.partition("/")
    if not owner or not name or "/" in name:
        raise Unsupported(f"A Replicate model is named owner/name, not `{model}`.")
    return f"/v1/models/{owner}/{name}/predictions"


def prediction_body(chat: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    if chat.get("tools"):
        raise Unsupported("Replicate language models take no `tools`.")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unsupported("`messages` must be a non-empty array.")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        text = _text(message.get("content"), f"messages[{i}]") if role else ""
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((str(role), text))
        else:
            raise Unsupported(f"Replicate language models have no `{role}` role.")
    if not turns:
        raise Unsupported("The conversation has no user message.")
    if len(turns) == 1 and turns[0][0] == "user":
        prompt = turns[0][1]
    else:
        prompt = "".join(f"{role}: {text}\n" for role, text in turns)
    inputs: dict[str, Any] = {"prompt": prompt}
    if system:
        inputs["system_prompt"] = "\n".join(system)
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    inputs["max_tokens"] = max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
        if chat.get(name) is not None:
            inputs[name] = chat[name]
    stop = chat.get("stop")
    if stop:
        # Replicate's language models take stop sequences comma-separated.
        inputs["stop_sequences"] = ",".join([stop] if isinstance(stop, str) else stop)
    return {"input": inputs, "stream": stream}
