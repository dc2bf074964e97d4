"""A strict simulator of Replicate's predictions API for language models.

Reference: Replicate HTTP API: ``POST /v1/models/{owner}/{name}/predictions`` (201 with the
prediction; ``Prefer: wait`` or ``wait=N``, N in 1-60, holds it until finished), ``GET
/v1/predictions/{id}``, and the prediction's ``urls.stream`` (here
``/v1/predictions/{id}/stream``, standing in for stream.replicate.com): SSE ``event: output``
with the text as ``data`` (one space after the colon, the rest is text), ``event: done`` with
``data: {}``. A language model's ``output`` is its tokens as an array of strings, its
``metrics`` carry ``input_token_count`` and ``output_token_count``. Refusals are problem
details: 401 ``Unauthenticated`` for a token it does not know, 404 for an unknown model, 422
``Input validation failed`` with ``invalid_fields`` (``input`` / ``input.prompt`` required,
``max_tokens`` ≥ 1, ``temperature`` in 0-5, ``top_p`` in 0-1), 402 for an account without
credit. A prediction created without waiting is ``starting``, then ``processing`` at the first
look and ``succeeded`` at the next. The model echoes (``unigate_sim.echo_reply``) the last user
line of the prompt.

``create_replicate_app(tokens, models)``; ``state.predictions`` (id → prediction),
``state.calls`` (``{"method", "path", "headers", "body", "status"}``), ``state.no_credit``,
``state.slow`` (the model outlasts ``Prefer: wait``: the prediction comes back unfinished).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.echo_reply import reply
from unigate_sim.openai.tokens import count_tokens, token_pieces, truncate_tokens

_LINE: Final = re.compile(r"^(user|assistant|system): (.*)$")
_WAIT: Final = re.compile(r"^wait(?:=(\d+))?$")


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"title": title, "detail": detail, "status": status, **extra}
    return Response(orjson.dumps(body), status, media_type="application/problem+json")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _invalid(fields: list[tuple[str, str, str]]) -> Response:
    return _problem(
        422,
        "Input validation failed",
        "\n".join(f"- {field}: {description}" for _, field, description in fields),
        invalid_fields=[
            {"type": kind, "field": field, "description": description}
            for kind, field, description in fields
        ],
    )


def _check_input(body: Any) -> list[tuple[str, str, str]]:
    inputs = body.get("input") if isinstance(body, dict) else None
    if not isinstance(inputs, dict):
        return [("required", "input", "input is required")]
    problems = []
    if not isinstance(inputs.get("prompt"), str):
        problems.append(("required", "input.prompt", "prompt is required"))
    max_tokens = inputs.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        problems.append(("number_gte", "input.max_tokens", "Must be greater than or equal to 1"))
    for name, high in (("temperature", 5), ("top_p", 1)):
        value = inputs.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= high):
            problems.append(("number_lte", f"input.{name}", f"Must be between 0 and {high}"))
    return problems


def _answer(inputs: dict[str, Any]) -> tuple[str, int]:
    prompt = str(inputs["prompt"])
    lines = [m for line in prompt.splitlines() if (m := _LINE.match(line))]
    users = [m.group(2) for m in lines if m.group(1) == "user"]
    last = users[-1] if users else prompt
    text = reply("user", last, []).text
    if isinstance(inputs.get("max_tokens"), int):
        text, _ = truncate_tokens(text, inputs["max_tokens"])
    prompt_tokens = count_tokens(prompt) + count_tokens(str(inputs.get("system_prompt") or ""))
    return text, prompt_tokens


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme == "Bearer" and token.strip() in request.app.state.tokens


def _succeed(prediction: dict[str, Any]) -> None:
    text, prompt_tokens = prediction["_answer"]
    prediction.update(
        status="succeeded",
        output=token_pieces(text),
        completed_at=_now(),
        metrics={
            "predict_time": 0.01,
            "input_token_count": prompt_tokens,
            "output_token_count": count_tokens(text),
        },
    )


def _public(prediction: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prediction.items() if not k.startswith("_")}


async def _create(request: Request) -> Response:
    state = request.app.state
    if not _authorized(request):
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    model = f"{request.path_params['owner']}/{request.path_params['name']}"
    record: dict[str, Any] = {"method": "POST", "path": request.url.path, "status": 0}
    record["headers"] = dict(request.headers)
    state.calls.append(record)
    response = await _created(request, model, record)
    record["status"] = response.status_code
    return response


async def _created(request: Request, model: str, record: dict[str, Any]) -> Response:
    state = request.app.state
    if model not in state.models:
        return _problem(404, "Not found", "The requested resource could not be found.")
    if state.no_credit:
        return _problem(
            402,
            "Insufficient credit",
            "You have insufficient credit to run this model. Go to "
            "https://replicate.com/account/billing#billing to purchase credit.",
        )
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _problem(400, "Bad request", "The request body is not valid JSON.")
    record["body"] = body
    if problems := _check_input(body):
        return _invalid(problems)
    prefer = request.headers.get("prefer")
    wait = _WAIT.match(prefer.strip()) if prefer else None
    if prefer and (wait is None or (wait.group(1) and not 1 <= int(wait.group(1)) <= 60)):
        return _problem(400, "Invalid Prefer header", f"Unsupported Prefer header: {prefer}")
    pid = secrets.token_hex(13)
    base = str(request.base_url).rstrip("/")
    prediction: dict[str, Any] = {
        "id": pid,
        "model": model,
        "version": "dp-" + secrets.token_hex(16),
        "input": body["input"],
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": _now(),
        "urls": {
            "get": f"{base}/v1/predictions/{pid}",
            "cancel": f"{base}/v1/predictions/{pid}/cancel",
            "stream": f"{base}/v1/predictions/{pid}/stream",
            "web": f"https://replicate.com/p/{pid}",
        },
        "_answer": _answer(body["input"]),
        "_looks": 0,
    }
    if wait is not None and not state.slow:
        _succeed(prediction)
    state.predictions[pid] = prediction
    return Response(orjson.dumps(_public(prediction)), 201, media_type="application/json")


async def _get(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    prediction = request.app.state.predictions.get(request.path_params["pid"])
    if prediction is None:
        return _problem(404, "Not found", "The requested resource could not be found.")
    if prediction["status"] in ("starting", "processing") and not prediction.get("_streaming"):
        prediction["_looks"] += 1
        if prediction["_looks"] == 1:
            prediction["status"] = "processing"
        else:
            _succeed(prediction)
    return Response(orjson.dumps(_public(prediction)), media_type="application/json")


async def _stream(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    prediction = request.app.state.predictions.get(request.path_params["pid"])
    if prediction is None:
        return _problem(404, "Not found", "The requested resource could not be found.")
    if "text/event-stream" not in request.headers.get("accept", ""):
        return _problem(406, "Not acceptable", "The stream is served as text/event-stream.")
    prediction["_streaming"] = True
    prediction["status"] = "processing"

    async def events() -> AsyncIterator[bytes]:
        text, _ = prediction["_answer"]
        for n, piece in enumerate(token_pieces(text)):
            lines = b"".join(b"data: " + line.encode() + b"\n" for line in piece.split("\n"))
            yield b"event: output\nid: " + str(n).encode() + b"\n" + lines + b"\n"
        _succeed(prediction)
        yield b"event: done\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _unknown(request: Request, exc: Exception) -> Response:
    return _problem(404, "Not found", "The requested resource could not be found.")


def create_replicate_app(tokens: set[str], models: set[str]) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/models/{owner}/{name}/predictions", _create, methods=["POST"]),
            Route("/v1/predictions/{pid}", _get, methods=["GET"]),
            Route("/v1/predictions/{pid}/stream", _stream, methods=["GET"]),
        ],
        exception_handlers={404: _unknown, 405: _unknown},
    )
    app.state.tokens = set(tokens)
    app.state.models = set(models)
    app.state.predictions = {}
    app.state.calls = []
    app.state.no_credit = False
    app.state.slow = False
    return app


__all__ = ["create_replicate_app"]
