"""The Starlette app of the Cohere simulator: routes, key check, errors, streams."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.cohere import checks
from unigate_sim.cohere.checks import Refused, invalid
from unigate_sim.cohere.replies import (
    DOCUMENTS_PER_SEARCH_UNIT,
    EMBED_DIMENSIONS,
    ChatReply,
    chat_reply,
    chat_usage_of,
    count_tokens,
    embedding,
    relevance,
)

CHAT_MODELS: Final = (
    "command-a-03-2025",
    "command-r-plus-08-2024",
    "command-r-08-2024",
    "command-r7b-12-2024",
    "command-r",
    "command-r-plus",
)
EMBED_MODELS: Final = (
    "embed-v4.0",
    "embed-english-v3.0",
    "embed-multilingual-v3.0",
    "embed-english-light-v3.0",
)
RERANK_MODELS: Final = ("rerank-v3.5", "rerank-english-v3.0", "rerank-multilingual-v3.0")
#: embed-v4.0's selectable dimensions (``output_dimension``).
V4_DIMENSIONS: Final = (256, 512, 1024, 1536)
#: Pieces a streamed text is sent in (at most).
STREAM_PIECES: Final = 4


def _error(status: int, message: str) -> Response:
    body = {"id": str(uuid.uuid4()), "message": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _model(body: dict[str, Any], served: tuple[str, ...], kind: str) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required")
    if model in served:
        return model
    if model in CHAT_MODELS + EMBED_MODELS + RERANK_MODELS:
        raise invalid(f"model '{model}' does not support {kind}")
    raise Refused(
        404,
        f"model '{model}' not found, make sure the correct model ID was used and that you "
        "have access to the model.",
    )


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    size = max(1, math.ceil(len(text) / STREAM_PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse(event: dict[str, Any]) -> bytes:
    kind = str(event["type"])
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_events(reply: ChatReply, usage: dict[str, Any], id: str) -> list[dict[str, Any]]:
    """Cohere's event sequence for a reply."""
    start = {
        "role": "assistant",
        "content": [],
        "tool_plan": "",
        "tool_calls": [],
        "citations": [],
    }
    events: list[dict[str, Any]] = [
        {"id": id, "type": "message-start", "delta": {"message": start}}
    ]
    if reply.tool_calls:
        events += [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}
            for piece in _pieces(reply.tool_plan)
        ]
        for index, call in enumerate(reply.tool_calls):
            opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(
                {
                    "type": "tool-call-start",
                    "index": index,
                    "delta": {"message": {"tool_calls": opening}},
                }
            )
            events += [
                {
                    "type": "tool-call-delta",
                    "index": index,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}},
                }
                for piece in _pieces(call["function"]["arguments"])
            ]
            events.append({"type": "tool-call-end", "index": index})
    else:
        events.append(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        )
        events += [
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
            for p in _pieces(reply.text)
        ]
        events.append({"type": "content-end", "index": 0})
    events.append(
        {"type": "message-end", "delta": {"finish_reason": reply.finish_reason, "usage": usage}}
    )
    return events


class _Cohere:
    def __init__(self, state: Any) -> None:
        self.state = state

    async def _body(self, request: Request) -> dict[str, Any]:
        auth = request.headers.get("authorization", "")
        if not auth:
            raise Refused(401, "no api key supplied")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or key not in self.state.api_keys:
            raise Refused(401, "invalid api token")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise invalid("the body is not valid JSON") from None
        if self.state.faults:
            raise Refused(*self.state.faults.pop(0))
        return body if isinstance(body, dict) else {}

    async def handle(self, request: Request) -> Response:
        call: dict[str, Any] = {"path": request.url.path, "body": None, "status": 200}
        self.state.calls.append(call)
        try:
            body = await self._body(request)
            call["body"] = body
            if request.url.path == "/v2/chat":
                return self.chat(body)
            if request.url.path == "/v2/embed":
                return self.embed(body)
            return self.rerank(body)
        except Refused as exc:
            call["status"] = exc.status
            return _error(exc.status, exc.message)

    def chat(self, body: dict[str, Any]) -> Response:
        checks.known_fields(body, checks.CHAT_FIELDS)
        _model(body, CHAT_MODELS, "chat")
        messages = checks.messages(body.get("messages"))
        if body.get("tools") is not None:
            checks.tools(body["tools"])
        if body.get("tool_choice") is not None:
            if body["tool_choice"] not in ("REQUIRED", "NONE"):
                raise invalid("tool_choice must be REQUIRED or NONE")
            if not body.get("tools"):
                raise invalid("tool_choice requires tools")
        fmt = body.get("response_format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object"):
                raise invalid("response_format.type must be text or json_object")
            schema = fmt.get("json_schema")
            if schema is not None and (not isinstance(schema, dict) or "type" not in schema):
                raise Refused(422, "invalid json_schema: it must be a JSON schema object")
        checks.number(body, "temperature", 0)
        checks.number(body, "p", 0.01, 0.99)
        checks.integer(body, "k", 0, 500)
        checks.integer(body, "max_tokens", 1)
        checks.integer(body, "seed", 0)
        checks.number(body, "frequency_penalty", 0, 1)
        checks.number(body, "presence_penalty", 0, 1)
        stops = body.get("stop_sequences")
        if stops is not None and (
            not isinstance(stops, list)
            or len(stops) > checks.MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) for s in stops)
        ):
            raise invalid("stop_sequences must be an array of at most 5 strings")
        if body.get("stream") not in (None, True, False):
            raise invalid("stream must be a boolean")
        reply = chat_reply(body, messages)
        usage = chat_usage_of(body, messages, reply.output_tokens())
        id = str(uuid.uuid4())
        if body.get("stream"):
            events = stream_events(reply, usage, id)

            async def frames() -> AsyncIterator[bytes]:
                for event in events:
                    yield _sse(event)

            return StreamingResponse(frames(), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant"}
        if reply.tool_calls:
            message["tool_plan"] = reply.tool_plan
            message["tool_calls"] = reply.tool_calls
        else:
            message["content"] = [{"type": "text", "text": reply.text}]
        answer = {
            "id": id,
            "message": message,
            "finish_reason": reply.finish_reason,
            "usage": usage,
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    def embed(self, body: dict[str, Any]) -> Response:
        checks.known_fields(body, checks.EMBED_FIELDS)
        model = _model(body, EMBED_MODELS, "embed")
        texts = body.get("texts")
        if (
            not isinstance(texts, list)
            or not 1 <= len(texts) <= checks.MAX_TEXTS
            or not all(isinstance(t, str) for t in texts)
        ):
            raise invalid(f"texts must be an array of 1 to {checks.MAX_TEXTS} strings")
        input_type = body.get("input_type")
        if input_type not in checks.INPUT_TYPES:
            raise invalid(
                "input_type is required for embed models v3 and higher, one of "
                + ", ".join(sorted(checks.INPUT_TYPES))
            )
        kinds = body.get("embedding_types", ["float"])
        if not isinstance(kinds, list) or not kinds or not set(kinds) <= {"float", "int8"}:
            raise invalid("embedding_types must be a non-empty subset of float, int8 here")
        dimensions = EMBED_DIMENSIONS
        if body.get("output_dimension") is not None:
            if model != "embed-v4.0" or body["output_dimension"] not in V4_DIMENSIONS:
                raise invalid("output_dimension is one of 256, 512, 1024, 1536 on embed-v4.0")
            dimensions = int(body["output_dimension"])
        if body.get("truncate") not in (None, "NONE", "START", "END"):
            raise invalid("truncate must be NONE, START or END")
        vectors = [embedding(model, str(input_type), text, dimensions) for text in texts]
        embeddings: dict[str, Any] = {}
        if "float" in kinds:
            embeddings["float"] = vectors
        if "int8" in kinds:
            embeddings["int8"] = [[round(v * 127) for v in vector] for vector in vectors]
        answer = {
            "id": str(uuid.uuid4()),
            "embeddings": embeddings,
            "texts": texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": sum(count_tokens(t) for t in texts)},
            },
            "response_type": "embeddings_by_type",
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    def rerank(self, body: dict[str, Any]) -> Response:
        checks.known_fields(body, checks.RERANK_FIELDS)
        _model(body, RERANK_MODELS, "rerank")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise invalid("query must be a non-empty string")
        documents = body.get("documents")
        if (
            not isinstance(documents, list)
            or not 1 <= len(documents) <= checks.MAX_DOCUMENTS
            or not all(isinstance(d, str) for d in documents)
        ):
            raise invalid(f"documents must be an array of 1 to {checks.MAX_DOCUMENTS} strings")
        checks.integer(body, "top_n", 1)
        checks.integer(body, "max_tokens_per_doc", 1)
        scores = [relevance(query, document) for document in documents]
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))
        top_n = int(body.get("top_n") or len(documents))
        answer = {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, "relevance_score": scores[i]} for i in order[:top_n]],
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {
                    "search_units": math.ceil(len(documents) / DOCUMENTS_PER_SEARCH_UNIT)
                },
            },
        }
        return Response(orjson.dumps(answer), media_type="application/json")


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"path {request.url.path} not found")


def create_cohere_app(api_keys: set[str]) -> Starlette:
    """An ASGI app simulating Cohere's v2 API for ``api_keys``."""
    app = Starlette(exception_handlers={404: _not_found, 405: _not_found})
    cohere = _Cohere(app.state)
    for path in ("/v2/chat", "/v2/embed", "/v2/rerank"):
        app.router.routes.append(Route(path, cohere.handle, methods=["POST"]))
    calls: list[dict[str, Any]] = []
    faults: list[tuple[int, str]] = []
    app.state.calls = calls
    app.state.faults = faults
    app.state.api_keys = set(api_keys)
    return app
