"""The Starlette app: Bedrock runtime paths, SigV4 first, then Claude's Messages semantics
delegated to the Anthropic simulator (its validation, answer and usage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.anthropic import DEFAULT_MODELS, AnthropicError, parse_messages_request
from unigate_sim.anthropic.render import render_events, render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.usage import cached_input
from unigate_sim.bedrock.converse import (
    converse_answer,
    converse_events,
    converse_model,
    parse_converse,
    plan_answer,
)
from unigate_sim.bedrock.errors import BedrockError, malformed
from unigate_sim.bedrock.eventstream import chunk_event, exception_event
from unigate_sim.bedrock.models import claude_model
from unigate_sim.bedrock.sigv4 import Key, Received, verify
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject

BEDROCK_VERSION: Final = "bedrock-2023-05-31"
EVENT_STREAM: Final = "application/vnd.amazon.eventstream"


@dataclass
class StreamException:
    """A stream that sends ``after`` chunk events, then an exception message and nothing more
    (how Bedrock reports throttling or a model failure once a stream has begun)."""

    after: int
    kind: str = "modelStreamErrorException"
    message: str = "The model stream failed."


def _data(frame: bytes) -> JSONObject:
    """The event of one SSE frame rendered by the Anthropic simulator."""
    event: JSONObject = orjson.loads(frame.split(b"\ndata: ", 1)[1])
    return event


def _metrics(usage: JSONObject, started: float) -> JSONObject:
    latency = int((asyncio.get_running_loop().time() - started) * 1000)
    return {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": latency,
        "firstByteLatency": latency,
    }


def _anthropic_body(payload: Any, model: str, *, stream: bool) -> JSONObject:
    """Bedrock's schema checks, then the body as Anthropic's API would have taken it."""
    if not isinstance(payload, dict):
        raise malformed("#: expected type: JSONObject")
    version = payload.get("anthropic_version")
    if version is None:
        raise malformed("#: required key [anthropic_version] not found")
    if version != BEDROCK_VERSION:
        raise malformed(f"#/anthropic_version: {version} is not a valid enum value")
    for extraneous in ("model", "stream"):
        if extraneous in payload:
            raise malformed(f"#: extraneous key [{extraneous}] is not permitted")
    body = {k: v for k, v in payload.items() if k != "anthropic_version"}
    return {**body, "model": model, "stream": stream}


async def _received(request: Request) -> Received:
    return Received(
        method=request.method,
        raw_path=request.scope.get("raw_path", request.url.path.encode()).decode(),
        query=request.scope.get("query_string", b"").decode(),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
    )


async def _invoke(request: Request, *, stream: bool) -> Response:
    state = request.app.state
    received = await _received(request)
    try:
        verify(received, state.keys, state.region, state.now())
    except BedrockError as error:
        return error.response()
    record: JSONObject = {
        "path": received.raw_path,
        "model_id": request.path_params["model_id"],
        "headers": received.headers,
        "status": 0,
        "usage": None,
    }
    state.calls.append(record)
    try:
        try:
            payload = orjson.loads(received.body)
        except orjson.JSONDecodeError:
            raise BedrockError(
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            ) from None
        record["body"] = payload
        if state.fail_next:
            raise state.fail_next.pop(0)
        model = claude_model(request.path_params["model_id"])
        try:
            parsed = parse_messages_request(
                _anthropic_body(payload, model, stream=stream), frozenset(state.models)
            )
        except AnthropicError as error:
            raise BedrockError("ValidationException", error.message) from None
        reply = plan_reply(parsed)
        prompt = cached_input(parsed, state.prompt_cache)
        response = (
            _stream(request, render_events(parsed, reply, prompt))
            if stream
            else _message(render_message(parsed, reply, prompt))
        )
        record["usage"] = render_message(parsed, reply, prompt)["usage"]
    except BedrockError as error:
        response = error.response()
    record["status"] = response.status_code
    return response


def _message(message: JSONObject) -> Response:
    usage = message["usage"]
    return Response(
        orjson.dumps(message),
        media_type="application/json",
        headers={
            "x-amzn-RequestId": random_id("", 32),
            "x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
            "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
            "x-amzn-bedrock-invocation-latency": "1",
        },
    )


def _stream(request: Request, frames: list[bytes]) -> Response:
    state = request.app.state
    events = [_data(frame) for frame in frames]
    failure: StreamException | None = (
        state.stream_exceptions.pop(0) if state.stream_exceptions else None
    )
    started = asyncio.get_running_loop().time()

    async def body() -> AsyncIterator[bytes]:
        usage: JSONObject = {}
        for sent, event in enumerate(events):
            if failure is not None and sent >= failure.after:
                yield exception_event(failure.kind, failure.message)
                return
            if event["type"] == "message_start":
                usage = dict(event["message"]["usage"])
            elif event["type"] == "message_delta":
                usage["output_tokens"] = event["usage"]["output_tokens"]
            elif event["type"] == "message_stop":
                # Bedrock appends its own metrics to the last event.
                event = {**event, "amazon-bedrock-invocationMetrics": _metrics(usage, started)}
            yield chunk_event(event)

    return StreamingResponse(
        body(),
        media_type=EVENT_STREAM,
        headers={
            "x-amzn-RequestId": random_id("", 32),
            "x-amzn-bedrock-content-type": "application/json",
        },
    )


async def _converse(request: Request, *, stream: bool) -> Response:
    """Converse / ConverseStream: SigV4 first, then the model, then the body."""
    state = request.app.state
    received = await _received(request)
    try:
        verify(received, state.keys, state.region, state.now())
    except BedrockError as error:
        return error.response()
    record: JSONObject = {
        "path": received.raw_path,
        "model_id": request.path_params["model_id"],
        "headers": received.headers,
        "status": 0,
        "usage": None,
    }
    state.calls.append(record)
    started = asyncio.get_running_loop().time()
    try:
        try:
            payload = orjson.loads(received.body)
        except orjson.JSONDecodeError:
            raise BedrockError("ValidationException", "Malformed input request.") from None
        record["body"] = payload
        if state.fail_next:
            raise state.fail_next.pop(0)
        model = converse_model(request.path_params["model_id"])
        if model is None:
            # Claude through Converse is real on Bedrock, but unigate sends Claude through
            # InvokeModel; the simulator refuses it so a wrong route is seen.
            raise BedrockError(
                "ValidationException", "This simulator serves Claude through InvokeModel only."
            )
        answer = plan_answer(parse_converse(payload, model, stream=stream))
        record["usage"] = answer.usage
        latency = int((asyncio.get_running_loop().time() - started) * 1000)
        headers = {"x-amzn-RequestId": random_id("", 32)}
        response: Response
        if stream:
            broken: StreamException | None = (
                state.stream_exceptions.pop(0) if state.stream_exceptions else None
            )
            events = (
                converse_events(answer, latency)
                if broken is None
                else converse_events(
                    answer, latency, broken.after, exception_event(broken.kind, broken.message)
                )
            )
            response = StreamingResponse(events, media_type=EVENT_STREAM, headers=headers)
        else:
            response = Response(
                orjson.dumps(converse_answer(answer, latency)),
                media_type="application/json",
                headers=headers,
            )
    except BedrockError as error:
        response = error.response()
    record["status"] = response.status_code
    return response


async def _converse_json(request: Request) -> Response:
    return await _converse(request, stream=False)


async def _converse_stream(request: Request) -> Response:
    return await _converse(request, stream=True)


async def _invoke_json(request: Request) -> Response:
    return await _invoke(request, stream=False)


async def _invoke_stream(request: Request) -> Response:
    return await _invoke(request, stream=True)


async def _unknown(request: Request, exc: Exception) -> Response:
    return BedrockError("ResourceNotFoundException", "Unknown operation").response()


def create_bedrock_app(
    credentials: dict[str, str],
    *,
    region: str = "us-east-1",
    models: list[str] | None = None,
    session_tokens: dict[str, str] | None = None,
    now: Callable[[], datetime] | None = None,
) -> Starlette:
    """An ASGI app simulating the Bedrock runtime of ``region`` for ``credentials`` (access
    key id → secret; ``session_tokens`` for temporary ones); its ``state`` is described in
    the package docstring."""
    app = Starlette(
        routes=[
            Route("/model/{model_id}/invoke", _invoke_json, methods=["POST"]),
            Route(
                "/model/{model_id}/invoke-with-response-stream", _invoke_stream, methods=["POST"]
            ),
            Route("/model/{model_id}/converse", _converse_json, methods=["POST"]),
            Route("/model/{model_id}/converse-stream", _converse_stream, methods=["POST"]),
        ],
        exception_handlers={404: _unknown, 405: _unknown},
    )
    tokens = session_tokens or {}
    app.state.keys = {akid: Key(secret, tokens.get(akid)) for akid, secret in credentials.items()}
    app.state.region = region
    app.state.models = set(models if models is not None else DEFAULT_MODELS)
    app.state.now = now or (lambda: datetime.now(UTC))
    app.state.calls = []
    app.state.fail_next = []
    app.state.stream_exceptions = []
    app.state.prompt_cache = set()
    return app
