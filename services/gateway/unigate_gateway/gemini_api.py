"""The gateway's Gemini-native surface (https://ai.google.dev/api), what Google's
``google-genai`` SDK and the Gemini CLI call:

* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (``alt=sse``
  for server-sent events; without it Google's JSON-array stream), ``:countTokens``,
  ``:embedContent``, ``:batchEmbedContents``, the same under ``/v1``;
* ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``, from the key's models.

They run the same path as ``/v1/chat/completions`` (authorize, candidates, failover, usage
event, request id); what differs is at the edge, as Google's API does it:

* the unigate key comes in ``x-goog-api-key`` (the SDK's header), the ``key`` query
  parameter, or ``Authorization: Bearer``;
* the model and the method come from the path; bodies are checked for what Google requires
  (``contents``, ``content``, ``requests``) and for the fields the gateway relies on
  (``generationConfig.maxOutputTokens``);
* every error — the gateway's own (key, quota, limits, validation) and the providers' —
  leaves in Google's shape, ``{"error": {"code", "message", "status"}}`` with Google's status
  name: a refused key is Google's 400 ``INVALID_ARGUMENT`` with the ``API_KEY_INVALID``
  reason, a missing one its 403 ``PERMISSION_DENIED``, an exhausted balance or a rate limit
  429 ``RESOURCE_EXHAUSTED``; inside a stream the error object is the last chunk.

Counting tokens is not billed: the relay reports zero usage for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Final

import orjson
from starlette.requests import Request

from unigate import errors
from unigate import gemini_endpoints as gemini
from unigate.errors import InvalidRequest
from unigate.google_errors import STATUS_NAMES, google_error_body, status_of_code
from unigate.model_limits import context_window, output_limit
from unigate.tokens import sse_payloads
from unigate_gateway.requests import (
    MAX_TOKENS_LIMIT,
    ParsedCall,
    bearer_key,
    check_model_name,
    counted_prompt,
)

UNREGISTERED: Final = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
_ROLES: Final = frozenset({"user", "model", "function"})
# What a model listing says each model can do: the embedding methods for models whose name
# says they embed, generation for the rest (unigate routes names, it does not type them).
GENERATION_METHODS: Final = ["generateContent", "streamGenerateContent", "countTokens"]
EMBEDDING_METHODS: Final = ["embedContent", "batchEmbedContents"]
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000


def gemini_key(request: Request) -> str:
    """The unigate key of a Gemini-route request: ``x-goog-api-key``, ``?key=``, or a
    bearer token."""
    key = request.headers.get("x-goog-api-key", "").strip()
    return (
        key
        or request.query_params.get("key", "").strip()
        or bearer_key(request.headers.get("authorization"))
    )


def google_error(err: errors.ClientFacingError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Google error body) for an error of the gateway or a provider."""
    status = err.status
    if status == 401:
        if err.code == "missing_api_key":
            return 403, google_error_body(403, UNREGISTERED, "PERMISSION_DENIED")
        # Google answers a key it does not accept with a 400 and this reason.
        return 400, google_error_body(400, err.message, reason="API_KEY_INVALID")
    if err.type == "insufficient_quota" or status == 429:
        return 429, google_error_body(429, err.message, "RESOURCE_EXHAUSTED")
    if err.type == "overloaded_error" or status == 529:
        return 503, google_error_body(503, err.message, "UNAVAILABLE")
    # A provider's own Google error keeps its status name (the relay lowers it into `code`).
    named = (err.code or "").upper()
    name = named if named in STATUS_NAMES else status_of_code(status)
    return status, google_error_body(status, err.message, name)


def error_json(err: errors.ClientFacingError) -> tuple[int, bytes]:
    status, body = google_error(err)
    return status, orjson.dumps(body)


def error_frame(err: errors.ClientFacingError) -> bytes:
    """The SSE event that ends a stream in error: Google's error object as the last chunk."""
    _, body = google_error(err)
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def json_array_stream(frames: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    """An SSE stream of ``data:`` chunks re-framed as Google's stream without ``alt=sse``:
    one JSON array whose elements are the chunks, sent as they come. The relay's frames are
    whole events, so each is re-framed as it passes."""
    first = True
    yield b"["
    async for frame in frames:
        raw = frame if isinstance(frame, bytes) else str(frame).encode()
        for payload in sse_payloads(raw):
            yield (b"" if first else b",\r\n") + payload + b"\n"
            first = False
    yield b"]"


# ---- request checks ---------------------------------------------------------------------


def _load(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("Invalid JSON payload received. Empty body.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            "Invalid JSON payload received. Expected an object for the request body."
        )
    return data


def _content(content: Any, where: str, *, role: bool) -> None:
    """A ``Content``: an object with a non-empty ``parts`` array (and a known role)."""
    if not isinstance(content, dict):
        raise InvalidRequest(f"* {where}: must be a Content object.", param=where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidRequest(f"* {where}.parts: contents.parts must not be empty.", param=where)
    if any(not isinstance(p, dict) for p in parts):
        raise InvalidRequest(f"* {where}.parts: each part must be a Part object.", param=where)
    if role and content.get("role") not in (None, "", *_ROLES):
        raise InvalidRequest(
            f"* {where}.role: Please use a valid role: user, model.", param=f"{where}.role"
        )


def _contents(data: dict[str, Any], where: str) -> None:
    contents = data.get("contents")
    if contents is None:
        raise InvalidRequest(f"* {where}.contents: contents is not specified", param="contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest(f"* {where}.contents: contents is not specified", param="contents")
    for i, content in enumerate(contents):
        _content(content, f"{where}.contents[{i}]", role=True)
    system = data.get("systemInstruction")
    if system is not None:
        _content(system, f"{where}.system_instruction", role=False)


def _max_output_tokens(data: dict[str, Any]) -> int:
    config = data.get("generationConfig")
    if config is None:
        return 0
    if not isinstance(config, dict):
        raise InvalidRequest(
            "Invalid JSON payload received. Expected an object for generation_config.",
            param="generationConfig",
        )
    value = config.get("maxOutputTokens")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be a"
            " non-negative integer.",
            param="generationConfig.maxOutputTokens",
        )
    if value > MAX_TOKENS_LIMIT:
        raise InvalidRequest(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be at most"
            f" {MAX_TOKENS_LIMIT}.",
            param="generationConfig.maxOutputTokens",
        )
    return value


def _embed_request(item: Any, where: str, model: str, *, named: bool) -> None:
    if not isinstance(item, dict):
        raise InvalidRequest(f"* {where}: must be an EmbedContentRequest object.", param=where)
    if named and item.get("model") != f"models/{model}":
        raise InvalidRequest(
            f"* {where}.model: the model of every request must be models/{model}",
            param=f"{where}.model",
        )
    if item.get("content") is None:
        raise InvalidRequest(f"* {where}.content: content is not specified", param="content")
    _content(item["content"], f"{where}.content", role=False)


def parse_gemini(method: str, model: str, body: bytes) -> ParsedCall:
    """A ``POST …/models/{model}:{method}`` request, checked before anything is spent."""
    found = gemini.METHODS.get(method)
    if found is None or not model:
        raise errors.NotFound(
            f"Method not found: models/{model}:{method}. The Gemini routes serve"
            f" {', '.join(gemini.METHODS)}.",
            code="not_found",
        )
    check_model_name(model, "model")
    endpoint, streamed = found
    data = _load(body)
    max_tokens = 0
    if endpoint == gemini.GENERATE:
        _contents(data, "GenerateContentRequest")
        max_tokens = _max_output_tokens(data)
    elif endpoint == gemini.COUNT_TOKENS:
        inner = data.get("generateContentRequest")
        if isinstance(inner, dict):
            _contents(inner, "CountTokensRequest.generate_content_request")
        else:
            _contents(data, "CountTokensRequest")
    elif endpoint == gemini.EMBED:
        _embed_request(data, "EmbedContentRequest", model, named=False)
    else:
        items = data.get("requests")
        if not isinstance(items, list) or not items:
            raise InvalidRequest(
                "* BatchEmbedContentsRequest.requests: requests is not specified",
                param="requests",
            )
        for i, item in enumerate(items):
            _embed_request(item, f"BatchEmbedContentsRequest.requests[{i}]", model, named=True)
    return ParsedCall(
        endpoint=endpoint,
        body=body,
        model=model,
        stream=streamed,
        # Google's streams always carry usageMetadata: nothing to opt into.
        include_usage=True,
        max_tokens=max_tokens,
        # Counting is never billed; everything else reserves its counted prompt.
        estimated_prompt_tokens=(
            1 if endpoint == gemini.COUNT_TOKENS else counted_prompt(endpoint, data, model, body)
        ),
    )


# ---- model listing ----------------------------------------------------------------------


def model_object(name: str) -> dict[str, Any]:
    """Google's ``Model`` for one of the key's model names (its token limits where unigate
    knows the model's published ones)."""
    embeds = "embed" in name.lower()
    model: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "unigate",
        "displayName": name,
        "supportedGenerationMethods": EMBEDDING_METHODS if embeds else GENERATION_METHODS,
    }
    window, output = context_window(name), output_limit(name)
    if window:
        model["inputTokenLimit"] = window
    if output:
        model["outputTokenLimit"] = output
    return model


def model_page(names: list[str], page_size: str | None, page_token: str | None) -> dict[str, Any]:
    """``ListModelsResponse``: ``pageSize`` models from ``pageToken`` (an offset)."""
    try:
        size = int(page_size) if page_size else DEFAULT_PAGE_SIZE
        start = int(page_token) if page_token else 0
    except ValueError:
        raise InvalidRequest("Invalid pageSize or pageToken.") from None
    if size < 0 or start < 0:
        raise InvalidRequest("pageSize and pageToken must not be negative.")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    page: dict[str, Any] = {"models": [model_object(n) for n in names[start : start + size]]}
    if start + size < len(names):
        page["nextPageToken"] = str(start + size)
    return page


def model_not_found(name: str, version: str) -> errors.ClientFacingError:
    return errors.NotFound(
        f"models/{name} is not found for API version {version}, or is not supported for"
        " this key. Call ListModels to see the list of available models.",
        code="model_not_found",
    )
