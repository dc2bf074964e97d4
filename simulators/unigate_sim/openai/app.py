"""The Starlette app: routing, authentication, call recording and fault injection."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.openai import billing
from unigate_sim.openai.audio_formats import CONTENT_TYPES
from unigate_sim.openai.audio_speech import parse_speech_request, speech_chunks, speech_events
from unigate_sim.openai.audio_transcriptions import parse_audio_request
from unigate_sim.openai.auth import authenticate
from unigate_sim.openai.chat_render import (
    Completion,
    render_completion,
    render_stream,
)
from unigate_sim.openai.chat_reply import plan_reply
from unigate_sim.openai.chat_request import parse_chat_request
from unigate_sim.openai.completions_render import render_text_completion, render_text_stream
from unigate_sim.openai.completions_request import parse_completion_request
from unigate_sim.openai.embeddings import parse_embedding_request, render_embeddings
from unigate_sim.openai.errors import OpenAIError
from unigate_sim.openai.faults import Fault, StreamEnding, paced_frames
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.images import parse_image_request, render_images, served_image
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import DEFAULT_MODELS, model_object
from unigate_sim.openai.moderations import parse_moderation_request, render_moderation
from unigate_sim.openai.prompt_cache import PromptCache, prompt_token_ids
from unigate_sim.openai.request_body import Body, json_payload, read_body
from unigate_sim.openai.rerank import parse_rerank_request, render_rerank
from unigate_sim.openai.responses_render import (
    Answer,
    render_response,
    render_response_stream,
)
from unigate_sim.openai.responses_request import parse_responses_request
from unigate_sim.openai.transcript_render import render_transcript


def _headers() -> dict[str, str]:
    """Headers OpenAI puts on every answer; the SDK exposes x-request-id as ``_request_id``."""
    return {"x-request-id": random_id("req_", 32), "openai-version": "2020-10-01"}


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=_headers()
    )


def _stream_response(request: Request, frames: list[bytes], media_type: str) -> Response:
    """Stream ``frames``, shaped by the request's fault if any (cut short, slowed)."""
    fault: Fault | None = request.state.fault
    return StreamingResponse(
        paced_frames(frames, fault, request.app.state.stream_endings),
        media_type=media_type,
        headers=_headers(),
    )


def _error_response(error: OpenAIError) -> Response:
    return _json_response(error.body(), error.status)


def _call_record(request: Request, body: Body) -> JSONObject:
    """What ``app.state.calls`` keeps of a request."""
    value = body.value if body.parsed else None
    model = value.get("model") if isinstance(value, dict) else request.path_params.get("model")
    stream = isinstance(value, dict) and value.get("stream") is True
    return {
        "method": request.method,
        "path": request.url.path,
        "model": model if isinstance(model, str) else None,
        "stream": stream,
        "body": value,
        "status": 0,
    }


async def _injected_fault(request: Request) -> Response | None:
    """An answer forced by ``fail_next`` or ``faults``; None to serve the request (a fault
    that only delays or shapes the stream is left in ``request.state.fault``)."""
    queue: list[tuple[int, JSONObject]] = request.app.state.fail_next
    if queue:
        status, body = queue.pop(0)
        return _json_response(body, status)
    faults: list[Fault] = request.app.state.faults
    fault = faults.pop(0) if faults else None
    request.state.fault = fault
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status:
        response = _json_response(fault.body, fault.status)
        response.headers.update(fault.headers)
        return response
    return None


_Handler = Callable[[Request, Body], Awaitable[Response]]


class _Simulator:
    """The endpoints, bound to the keys and models one app was created with."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models
        self.prompt_cache = PromptCache()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self._serve(self.chat_completions), methods=["POST"]),
            Route("/v1/completions", self._serve(self.completions), methods=["POST"]),
            Route("/v1/embeddings", self._serve(self.embeddings), methods=["POST"]),
            Route("/v1/moderations", self._serve(self.moderations), methods=["POST"]),
            Route("/v1/images/generations", self._serve(self.images), methods=["POST"]),
            Route("/v1/audio/speech", self._serve(self.speech), methods=["POST"]),
            Route("/v1/audio/transcriptions", self._serve(self.transcriptions), methods=["POST"]),
            Route("/v1/audio/translations", self._serve(self.translations), methods=["POST"]),
            Route("/v1/rerank", self._serve(self.rerank), methods=["POST"]),
            Route("/v1/responses", self._serve(self.responses), methods=["POST"]),
            Route("/v1/models", self._serve(self.list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", self._serve(self.retrieve_model), methods=["GET"]),
            # The legacy billing API One API reads an OpenAI channel's balance from.
            Route(
                "/v1/dashboard/billing/subscription",
                self._serve(billing.subscription),
                methods=["GET"],
            ),
            Route("/v1/dashboard/billing/usage", self._serve(billing.usage), methods=["GET"]),
            # Where images/generations' URLs point; public, like OpenAI's signed blob URLs.
            Route("/images/{name}", _image_file, methods=["GET"]),
        ]

    def _serve(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap an endpoint with authentication, call recording and fault injection."""

        async def endpoint(request: Request) -> Response:
            try:
                authenticate(request, frozenset(request.app.state.api_keys))
            except OpenAIError as error:
                # Refused at the door: the provider never "saw" the request.
                return _error_response(error)
            body = await read_body(request)
            record = _call_record(request, body)
            request.app.state.calls.append(record)
            response = await _injected_fault(request)
            if response is None:
                try:
                    response = await handler(request, body)
                except OpenAIError as error:
                    response = _error_response(error)
            record["status"] = response.status_code
            return response

        return endpoint

    async def chat_completions(self, request: Request, body: Body) -> Response:
        chat = parse_chat_request(json_payload(body), self.models)
        read = self.prompt_cache.read_and_write(prompt_token_ids(chat.messages, chat.tools))
        chat = dataclasses.replace(chat, cached_tokens=min(read, chat.prompt_tokens))
        reply = plan_reply(chat)
        completion = Completion.new(chat.model)
        fault: Fault | None = request.state.fault
        no_usage = fault is not None and fault.no_usage
        if chat.stream:
            shown = dataclasses.replace(chat, include_usage=False) if no_usage else chat
            frames = render_stream(shown, reply, completion)
            return _stream_response(request, frames, "text/event-stream")
        answer = render_completion(chat, reply, completion)
        if no_usage:
            answer.pop("usage", None)
        return _json_response(answer)

    async def completions(self, request: Request, body: Body) -> Response:
        legacy = parse_completion_request(json_payload(body), self.models)
        if legacy.stream:
            return _stream_response(request, render_text_stream(legacy), "text/event-stream")
        return _json_response(render_text_completion(legacy))

    async def moderations(self, request: Request, body: Body) -> Response:
        moderation = parse_moderation_request(json_payload(body), self.models)
        return _json_response(render_moderation(moderation))

    async def images(self, request: Request, body: Body) -> Response:
        generation = parse_image_request(json_payload(body), self.models)
        return _json_response(render_images(generation, str(request.base_url)))

    async def speech(self, request: Request, body: Body) -> Response:
        speech = parse_speech_request(json_payload(body), self.models)
        if speech.sse:
            return _stream_response(request, speech_events(speech), "text/event-stream")
        media_type = CONTENT_TYPES[speech.response_format]
        return _stream_response(request, speech_chunks(speech), media_type)

    async def transcriptions(self, request: Request, body: Body) -> Response:
        return await self._audio(body, "transcribe")

    async def translations(self, request: Request, body: Body) -> Response:
        return await self._audio(body, "translate")

    async def _audio(self, body: Body, task: str) -> Response:
        form = body.form if body.form is not None else FormData()
        try:
            audio = await parse_audio_request(form, task, self.models)
        finally:
            await form.close()
        transcript = render_transcript(audio)
        if isinstance(transcript, str):
            return Response(transcript, media_type="text/plain", headers=_headers())
        return _json_response(transcript)

    async def rerank(self, request: Request, body: Body) -> Response:
        ranking = parse_rerank_request(json_payload(body), self.models)
        return _json_response(render_rerank(ranking))

    async def responses(self, request: Request, body: Body) -> Response:
        parsed = parse_responses_request(json_payload(body), self.models)
        answer = Answer.plan(parsed)
        if parsed.stream:
            frames = render_response_stream(parsed, answer)
            return _stream_response(request, frames, "text/event-stream")
        return _json_response(render_response(parsed, answer))

    async def embeddings(self, request: Request, body: Body) -> Response:
        embedding = parse_embedding_request(json_payload(body), self.models)
        return _json_response(render_embeddings(embedding))

    async def list_models(self, request: Request, body: Body) -> Response:
        return _json_response(
            {"object": "list", "data": [model_object(model) for model in self.models]}
        )

    async def retrieve_model(self, request: Request, body: Body) -> Response:
        model = request.path_params["model"]
        if model not in self.models:
            raise OpenAIError(
                404, f"The model '{model}' does not exist", param="model", code="model_not_found"
            )
        return _json_response(model_object(model))


async def _image_file(request: Request) -> Response:
    png = served_image(request.path_params["name"])
    if png is None:
        return await _invalid_url(request, LookupError())
    return Response(png, media_type="image/png")


async def _invalid_url(request: Request, exc: Exception) -> Response:
    return _error_response(OpenAIError(404, f"Invalid URL ({request.method} {request.url.path})"))


async def _invalid_method(request: Request, exc: Exception) -> Response:
    return _error_response(
        OpenAIError(405, f"Invalid method for URL ({request.method} {request.url.path})")
    )


def create_app(api_keys: set[str], models: list[str] | None = None) -> Starlette:
    """An ASGI app simulating the OpenAI API for ``api_keys``, serving ``models``.

    ``models`` defaults to :data:`DEFAULT_MODELS`. The app's ``state.calls`` and
    ``state.fail_next`` lists are described in the ``unigate_sim.openai`` package docstring.
    """
    simulator = _Simulator(tuple(models) if models is not None else DEFAULT_MODELS)
    app = Starlette(
        routes=simulator.routes(),
        exception_handlers={404: _invalid_url, 405: _invalid_method},
    )
    calls: list[JSONObject] = []
    fail_next: list[tuple[int, JSONObject]] = []
    app.state.calls = calls
    app.state.fail_next = fail_next
    faults: list[Fault] = []
    endings: list[StreamEnding] = []
    app.state.faults = faults
    app.state.stream_endings = endings
    # Mutable, so a test can revoke or restore a key while the simulator runs.
    app.state.api_keys = set(api_keys)
    # The account's billing as the legacy billing API reports it (a test may change it).
    app.state.billing = billing.Account()
    return app
