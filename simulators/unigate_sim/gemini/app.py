"""The Gemini API front door (``generativelanguage.googleapis.com``).

``POST /{v1|v1beta}/models/{model}:{generateContent|streamGenerateContent|countTokens|
embedContent|batchEmbedContents}`` and ``GET /{version}/models``, checked in Google's order:

* the key: ``x-goog-api-key`` header or ``?key=``; none is 403 PERMISSION_DENIED ("Method
  doesn't allow unregistered callers ..."), a wrong one 400 INVALID_ARGUMENT with reason
  ``API_KEY_INVALID``, a Bearer token (OAuth, which the simulator never issues) 401
  UNAUTHENTICATED;
* the model: unknown, or not serving that method (a chat model asked to embed), 404
  NOT_FOUND "models/x is not found for API version v1beta, or is not supported for ...";
* the body (:mod:`unigate_sim.gemini.validate`), then the answer (:mod:`.reply`).

``app.state.sim`` is a :class:`SimState`; ``app.state.api_keys`` and ``app.state.models``
may be changed while it runs. ``countTokens`` takes ``contents`` or a whole
``generateContentRequest`` (with its ``model``), validated as ``generateContent`` bodies, and
answers the ``promptTokenCount`` that request would report. Embedding models answer
``embedContent`` and ``batchEmbedContents`` with
deterministic unit vectors (:data:`EMBEDDING_DIMENSIONS`), and no token counts (Gemini
reports none).
"""

from __future__ import annotations

from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate_sim.gemini.errors import GoogleError, api_key_invalid, invalid, unknown_field
from unigate_sim.gemini.reply import embedding_values
from unigate_sim.gemini.service import (
    SimState,
    count_tokens_answer,
    error_response,
    generate,
    json_body,
    json_response,
)

DEFAULT_MODELS: Final = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.0-flash",
    "gemini-3-pro-preview",
)
EMBEDDING_DIMENSIONS: Final = {"text-embedding-004": 768, "gemini-embedding-001": 3072}
SERVICE: Final = "generativelanguage.googleapis.com"
# EmbedContentRequest's fields (https://ai.google.dev/api/embeddings#request-body).
_EMBED_FIELDS: Final = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
_UNREGISTERED: Final = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
_BAD_TOKEN: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _authenticate(request: Request) -> None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key is None:
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            raise GoogleError(401, _BAD_TOKEN)
        raise GoogleError(403, _UNREGISTERED)
    if key not in request.app.state.api_keys:
        raise api_key_invalid(SERVICE)


def _not_found(model: str, version: str, method: str) -> GoogleError:
    return GoogleError(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods.",
    )


def _embedding(item: dict[str, Any], where: str, model: str) -> dict[str, Any]:
    """One ``ContentEmbedding`` for a validated ``EmbedContentRequest``."""
    parts = (item.get("content") or {}).get("parts") or []
    text = " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
    if not text:
        raise invalid(f"* {where}.content: must not be empty")
    dims = item.get("outputDimensionality") or EMBEDDING_DIMENSIONS[model]
    return {"values": embedding_values(model, text, int(dims))}


def _embed_one(body: Any, model: str) -> Response:
    """``embedContent``: one content, its ``model`` (if given) the path's."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        raise invalid("* EmbedContentRequest.content: content is not specified")
    unknown = set(body) - _EMBED_FIELDS
    if unknown:
        raise unknown_field(sorted(unknown)[0], "")
    if "model" in body and body["model"] != f"models/{model}":
        raise invalid(f"* EmbedContentRequest.model: must be models/{model}")
    return json_response({"embedding": _embedding(body, "EmbedContentRequest", model)})


def _embed(body: Any, model: str) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    out = []
    for i, item in enumerate(body["requests"]):
        if not isinstance(item, dict) or item.get("model") != f"models/{model}":
            raise invalid(
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model of every request "
                f"must be models/{model}"
            )
        out.append(_embedding(item, f"BatchEmbedContentsRequest.requests[{i}]", model))
    return json_response({"embeddings": out})


async def _model_method(request: Request) -> Response:
    state: SimState = request.app.state.sim
    version = request.path_params["version"]
    model, _, method = request.path_params["target"].partition(":")
    try:
        if version not in ("v1", "v1beta") or method not in (
            "generateContent",
            "streamGenerateContent",
            "batchEmbedContents",
            "embedContent",
            "countTokens",
        ):
            return json_response(
                {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, 404
            )
        _authenticate(request)
        embeds = method in ("batchEmbedContents", "embedContent")
        if embeds != (model in EMBEDDING_DIMENSIONS) or (
            not embeds and model not in request.app.state.models
        ):
            raise _not_found(model, version, method)
        body = await json_body(request)
        state.calls.append(
            {"path": request.url.path, "model": model, "method": method, "body": body}
        )
        if state.fail_next:
            status, error = state.fail_next.pop(0)
            return json_response(error, status)
        if method == "embedContent":
            return _embed_one(body, model)
        if embeds:
            return _embed(body, model)
        if method == "countTokens":
            return count_tokens_answer(body, vertex=False)
        return generate(body, model, method, request.query_params.get("alt") == "sse")
    except GoogleError as error:
        return error_response(error)


async def _list_models(request: Request) -> Response:
    try:
        _authenticate(request)
    except GoogleError as error:
        return error_response(error)
    models = [
        {"name": f"models/{m}", "supportedGenerationMethods": ["generateContent", "countTokens"]}
        for m in request.app.state.models
    ] + [
        {"name": f"models/{m}", "supportedGenerationMethods": ["embedContent"]}
        for m in EMBEDDING_DIMENSIONS
    ]
    return json_response({"models": models})


def create_gemini_app(api_keys: set[str], models: list[str] | None = None) -> Starlette:
    """A Gemini API simulator accepting ``api_keys`` and serving ``models``."""
    app = Starlette(
        routes=[
            Route("/{version}/models/{target:path}", _model_method, methods=["POST"]),
            Route("/{version}/models", _list_models, methods=["GET"]),
        ]
    )
    app.state.api_keys = set(api_keys)
    app.state.models = set(models or DEFAULT_MODELS)
    app.state.sim = SimState()
    return app
