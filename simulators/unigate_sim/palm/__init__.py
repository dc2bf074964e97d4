"""A strict simulator of the PaLM API's chat method, ``POST /v1beta2/models/chat-bison-001:
generateMessage`` on ``generativelanguage.googleapis.com``.

Reference: Google's PaLM API v1beta2 ("models.generateMessage", "MessagePrompt",
"Message", "GenerateMessageResponse") and Google's error model; checked in Google's order:

* the path: another version than v1beta2/v1beta3 or another method is a 404; a model that
  does not serve ``generateMessage`` 404 NOT_FOUND "models/x is not found for API version
  v1beta2, or is not supported for generateMessage ...";
* the key: ``x-goog-api-key`` or ``?key=``; none is 403 PERMISSION_DENIED, a wrong one 400
  INVALID_ARGUMENT with reason ``API_KEY_INVALID`` (the Gemini simulator's errors);
* the body, as Google's proto JSON parser reads it: unknown fields ("Unknown name ...:
  Cannot find field."), wrong types ("Invalid value at 'temperature' (TYPE_FLOAT)"), then
  the request's rules: ``prompt.messages`` required and non-empty, each ``content``
  required, authors alternating, ``temperature`` in [0, 1], ``topP`` in [0, 1], ``topK``
  not negative, ``candidateCount`` in [1, 8].

The model answers ``"Echo: "`` and the last message's content (candidate i > 0: ``"Echo
(i+1): ..."``), authored by the other author, with the conversation as ``messages``; a
prompt holding :data:`BLOCK_WORD` is withheld: no candidates, ``filters: [{"reason":
"OTHER"}]``. No token counts (PaLM reports none).

``create_palm_app(keys)``; ``state.calls`` — per accepted request ``{"path", "headers",
"query", "body"}``; ``state.fail_next`` — ``(status, google error body)`` pairs answered
before the body is checked.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate_sim.gemini.errors import GoogleError, api_key_invalid, invalid, unknown_field
from unigate_sim.gemini.service import error_response, json_body, json_response

CHAT_MODELS: Final = frozenset({"chat-bison-001"})
VERSIONS: Final = frozenset({"v1beta2", "v1beta3"})
SERVICE: Final = "generativelanguage.googleapis.com"
BLOCK_WORD: Final = "forbidden-topic"
MAX_CANDIDATES: Final = 8
_REQUEST_FIELDS: Final = frozenset({"prompt", "temperature", "candidateCount", "topP", "topK"})
_PROMPT_FIELDS: Final = frozenset({"context", "examples", "messages"})
_MESSAGE_FIELDS: Final = frozenset({"author", "content", "citationMetadata"})
_EXAMPLE_FIELDS: Final = frozenset({"input", "output"})
_UNREGISTERED: Final = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
# Google's proto names, as its parser words them in errors.
_SNAKE: Final = {"candidateCount": "candidate_count", "topP": "top_p", "topK": "top_k"}


def _authenticate(request: Request) -> None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key is None:
        raise GoogleError(403, _UNREGISTERED)
    if key not in request.app.state.keys:
        raise api_key_invalid(SERVICE)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"Invalid value at '{where}', Starting an object on a scalar field")
    return value


def _known(obj: dict[str, Any], fields: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in fields:
            raise unknown_field(name, where)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"Invalid value at '{where}' (TYPE_STRING), {value!r}")
    return value


def _float(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"Invalid value at '{_SNAKE.get(name, name)}' (TYPE_FLOAT), {value!r}")
    return float(value)


def _int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Invalid value at '{_SNAKE.get(name, name)}' (TYPE_INT32), {value!r}")
    return value


def _messages(prompt: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation, each message's author filled in (PaLM numbers unnamed authors)."""
    raw = prompt.get("messages")
    if raw is None or raw == []:
        raise invalid("* GenerateMessageRequest.prompt.messages: messages is not specified")
    if not isinstance(raw, list):
        raise invalid("Invalid value at 'prompt.messages', expected a list.")
    out: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        where = f"prompt.messages[{i}]"
        message = _object(item, where)
        _known(message, _MESSAGE_FIELDS, where)
        content = _string(message.get("content", ""), f"{where}.content")
        if not content:
            raise invalid(f"* GenerateMessageRequest.{where}.content: content is not specified")
        author = _string(message.get("author", ""), f"{where}.author") or str(i % 2)
        if not author.isalnum():
            raise invalid(f"* GenerateMessageRequest.{where}.author: must be alphanumeric")
        if out and out[-1]["author"] == author:
            raise invalid("Messages must alternate between authors.")
        out.append({"author": author, "content": content})
    return out


def _check(body: Any) -> tuple[dict[str, Any], list[dict[str, str]], int]:
    """(the prompt, its messages, the candidate count) of a valid request."""
    request = _object(body, "")
    _known(request, _REQUEST_FIELDS, "")
    if "prompt" not in request:
        raise invalid("* GenerateMessageRequest.prompt: prompt is not specified")
    prompt = _object(request["prompt"], "prompt")
    _known(prompt, _PROMPT_FIELDS, "prompt")
    if "context" in prompt:
        _string(prompt["context"], "prompt.context")
    examples = prompt.get("examples", [])
    if not isinstance(examples, list):
        raise invalid("Invalid value at 'prompt.examples', expected a list.")
    for i, example in enumerate(examples):
        _known(_object(example, f"prompt.examples[{i}]"), _EXAMPLE_FIELDS, f"prompt.examples[{i}]")
    messages = _messages(prompt)
    temperature = _float(request, "temperature")
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise invalid("* GenerateMessageRequest.temperature: must be in the range [0.0, 1.0]")
    top_p = _float(request, "topP")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise invalid("* GenerateMessageRequest.top_p: must be in the range [0.0, 1.0]")
    top_k = _int(request, "topK")
    if top_k is not None and top_k < 0:
        raise invalid("* GenerateMessageRequest.top_k: must be non-negative")
    count = _int(request, "candidateCount")
    if count is not None and not 1 <= count <= MAX_CANDIDATES:
        raise invalid(
            f"* GenerateMessageRequest.candidate_count: must be in the range [1, {MAX_CANDIDATES}]"
        )
    return prompt, messages, count or 1


def _answer(prompt: dict[str, Any], messages: list[dict[str, str]], count: int) -> Response:
    said = " ".join([str(prompt.get("context") or "")] + [m["content"] for m in messages])
    if BLOCK_WORD in said:
        return json_response({"messages": messages, "filters": [{"reason": "OTHER"}]})
    last = messages[-1]
    others = {m["author"] for m in messages} - {last["author"]}
    author = min(others) if others else ("1" if last["author"] == "0" else "0")
    candidates = [
        {
            "author": author,
            "content": f"Echo: {last['content']}"
            if i == 0
            else f"Echo ({i + 1}): {last['content']}",
        }
        for i in range(count)
    ]
    return json_response({"candidates": candidates, "messages": messages})


async def _model_method(request: Request) -> Response:
    state = request.app.state
    version = request.path_params["version"]
    model, _, method = request.path_params["target"].partition(":")
    try:
        if version not in VERSIONS or method != "generateMessage":
            return json_response(
                {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, 404
            )
        _authenticate(request)
        if model not in CHAT_MODELS:
            raise GoogleError(
                404,
                f"models/{model} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise invalid("Invalid JSON payload received. Unexpected content type.")
        body = await json_body(request)
        state.calls.append(
            {
                "path": request.url.path,
                "headers": dict(request.headers),
                "query": dict(request.query_params),
                "body": body,
            }
        )
        if state.fail_next:
            status, error = state.fail_next.pop(0)
            return json_response(error, status)
        return _answer(*_check(body))
    except GoogleError as error:
        return error_response(error)


def create_palm_app(keys: set[str]) -> Starlette:
    """A PaLM API simulator accepting ``keys``."""
    app = Starlette(
        routes=[Route("/{version}/models/{target:path}", _model_method, methods=["POST"])]
    )
    app.state.keys = set(keys)
    app.state.calls = []
    app.state.fail_next = []
    return app


__all__ = ["BLOCK_WORD", "CHAT_MODELS", "create_palm_app"]
