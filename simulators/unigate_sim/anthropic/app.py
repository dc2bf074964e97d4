"""The Starlette app: routing, authentication, call recording and fault injection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.anthropic.auth import authenticate
from unigate_sim.anthropic.batches import BatchStore
from unigate_sim.anthropic.errors import AnthropicError, error_body, invalid
from unigate_sim.anthropic.models import DEFAULT_MODELS, MODELS
from unigate_sim.anthropic.render import render_events, render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.request import parse_messages_request
from unigate_sim.anthropic.usage import cached_input, input_tokens
from unigate_sim.openai.faults import Fault, StreamEnding, paced_frames
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import event_frame


@dataclass
class StreamError:
    """A stream that sends ``after`` frames, then an ``error`` event (Anthropic reports
    overload this way once a stream has begun) and nothing more."""

    after: int
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"request-id": random_id("req_", 24)},
    )


def _error(error: AnthropicError) -> Response:
    return _json(error.body(), error.status)


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("There was an error parsing the body as JSON.") from None


async def _injected(request: Request) -> Response | None:
    """An answer forced by ``fail_next`` or a status ``Fault`` (None: serve the request; a
    fault that only delays or shapes the stream stays in ``request.state.fault``)."""
    state = request.app.state
    if state.fail_next:
        status, body = state.fail_next.pop(0)
        return _json(body, status)
    fault: Fault | None = state.faults.pop(0) if state.faults else None
    request.state.fault = fault
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status:
        response = _json(fault.body, fault.status)
        response.headers.update(fault.headers)
        return response
    return None


_Handler = Callable[[Request, Any], Awaitable[Response]]


class _Simulator:
    def __init__(self, models: frozenset[str], prompt_cache: set[str]) -> None:
        self.models = models
        self.batches = BatchStore(models, prompt_cache)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self._serve(self.messages), methods=["POST"]),
            Route("/v1/messages/count_tokens", self._serve(self.count), methods=["POST"]),
            Route("/v1/models", self._serve(self.list_models, body=False), methods=["GET"]),
            Route("/v1/messages/batches", self._serve(self.create_batch), methods=["POST"]),
            Route(
                "/v1/messages/batches", self._serve(self.list_batches, body=False), methods=["GET"]
            ),
            Route(
                "/v1/messages/batches/{batch_id}",
                self._serve(self.retrieve_batch, body=False),
                methods=["GET"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}",
                self._serve(self.delete_batch, body=False),
                methods=["DELETE"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}/cancel",
                self._serve(self.cancel_batch, body=False),
                methods=["POST"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}/results",
                self._serve(self.batch_results, body=False),
                methods=["GET"],
            ),
        ]

    def _serve(
        self, handler: _Handler, *, body: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                authenticate(request, frozenset(request.app.state.api_keys))
            except AnthropicError as error:
                return _error(error)
            record: JSONObject = {
                "path": request.url.path,
                "headers": dict(request.headers),
                "status": 0,
            }
            request.app.state.calls.append(record)
            try:
                payload = await _read_json(request) if body else None
                record["body"] = payload
                response = await _injected(request) or await handler(request, payload)
            except AnthropicError as error:
                response = _error(error)
            record["status"] = response.status_code
            return response

        return endpoint

    async def messages(self, request: Request, payload: Any) -> Response:
        parsed = parse_messages_request(payload, self.models)
        reply = plan_reply(parsed)
        prompt = cached_input(parsed, request.app.state.prompt_cache)
        if not parsed.stream:
            return _json(render_message(parsed, reply, prompt))
        frames = render_events(parsed, reply, prompt)
        errors: list[StreamError] = request.app.state.stream_errors
        if errors:
            failure = errors.pop(0)
            frames = frames[: failure.after]
            frames.append(event_frame(error_body(failure.error_type, failure.message)))
        fault: Fault | None = request.state.fault
        return StreamingResponse(
            paced_frames(frames, fault, request.app.state.stream_endings),
            media_type="text/event-stream",
            headers={"request-id": random_id("req_", 24)},
        )

    async def count(self, request: Request, payload: Any) -> Response:
        parsed = parse_messages_request(payload, self.models, counting=True)
        return _json({"input_tokens": input_tokens(parsed)})

    @staticmethod
    def _base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @staticmethod
    def _expired(request: Request) -> set[str]:
        expired: set[str] = request.app.state.batch_expired
        return expired

    async def create_batch(self, request: Request, payload: Any) -> Response:
        batch = self.batches.create(payload, request.app.state.batch_delay)
        return _json(batch.render(self._base_url(request)))

    async def retrieve_batch(self, request: Request, payload: Any) -> Response:
        batch = self.batches.get(request.path_params["batch_id"], self._expired(request))
        return _json(batch.render(self._base_url(request)))

    async def list_batches(self, request: Request, payload: Any) -> Response:
        query = request.query_params
        raw_limit = query.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise invalid("limit: Input should be between 1 and 1000")
        page, has_more = self.batches.page(
            self._expired(request), int(raw_limit), query.get("before_id"), query.get("after_id")
        )
        data = [batch.render(self._base_url(request)) for batch in page]
        return _json(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def cancel_batch(self, request: Request, payload: Any) -> Response:
        batch = self.batches.cancel(request.path_params["batch_id"], self._expired(request))
        return _json(batch.render(self._base_url(request)))

    async def delete_batch(self, request: Request, payload: Any) -> Response:
        batch_id = request.path_params["batch_id"]
        self.batches.delete(batch_id, self._expired(request))
        return _json({"id": batch_id, "type": "message_batch_deleted"})

    async def batch_results(self, request: Request, payload: Any) -> Response:
        body = self.batches.results_jsonl(request.path_params["batch_id"], self._expired(request))
        return Response(
            body,
            media_type="application/binary",
            headers={"request-id": random_id("req_", 24)},
        )

    async def list_models(self, request: Request, payload: Any) -> Response:
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": MODELS[model].display_name if model in MODELS else model,
                "created_at": MODELS[model].created_at
                if model in MODELS
                else "2025-01-01T00:00:00Z",
            }
            for model in sorted(self.models)
        ]
        return _json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json(error_body("not_found_error", "Not Found"), 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _json(error_body("invalid_request_error", "Method Not Allowed"), 405)


def create_anthropic_app(api_keys: set[str], models: list[str] | None = None) -> Starlette:
    """An ASGI app simulating Anthropic's Messages API for ``api_keys``, serving ``models``
    (default :data:`DEFAULT_MODELS`); its ``state`` is described in the package docstring."""
    prompt_cache: set[str] = set()
    simulator = _Simulator(
        frozenset(models if models is not None else DEFAULT_MODELS), prompt_cache
    )
    app = Starlette(
        routes=simulator.routes(),
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.api_keys = set(api_keys)
    app.state.calls = []
    app.state.fail_next = []
    app.state.faults = []
    app.state.stream_errors = []
    app.state.stream_endings = []
    app.state.prompt_cache = prompt_cache
    app.state.batch_delay = 0.5
    app.state.batch_expired = set()
    return app


__all__ = ["Fault", "StreamEnding", "StreamError", "create_anthropic_app"]
