"""Claude on the Vertex AI simulator: ``POST /v1/projects/{project}/locations/{location}/
publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``.

Reference: Anthropic's "Claude on Vertex AI" and Google's "Use Claude models": the body is
Anthropic's Messages body with ``anthropic_version: "vertex-2023-10-16"`` and without ``model``
(the path names it, as ``name@date``: ``claude-3-5-sonnet-v2@20241022``); the answer is
Anthropic's message, or its SSE events for a stream; Claude's own errors keep Anthropic's
shape. Authentication is Vertex's (the bearer token check is the caller's, passed in). The
Messages semantics are the Anthropic simulator's (validation, answer, usage).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from unigate_sim.anthropic import AnthropicError, parse_messages_request
from unigate_sim.anthropic.errors import invalid
from unigate_sim.anthropic.render import render_events, render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.usage import cached_input
from unigate_sim.gemini.errors import GoogleError
from unigate_sim.gemini.service import SimState, error_response, json_response

VERTEX_VERSION: Final = "vertex-2023-10-16"

#: Vertex's Claude model ids → Claude's own names (the Anthropic simulator's models).
CLAUDE_MODELS: Final[dict[str, str]] = {
    "claude-3-5-haiku@20241022": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-v2@20241022": "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet@20250219": "claude-3-7-sonnet-20250219",
    "claude-sonnet-4@20250514": "claude-sonnet-4-20250514",
    "claude-opus-4@20250514": "claude-opus-4-20250514",
}


def _anthropic_request(body: Any, name: str, method: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    version = body.get("anthropic_version")
    if version != VERTEX_VERSION:
        raise invalid(
            f"anthropic_version: Input should be '{VERTEX_VERSION}'"
            if version is not None
            else "anthropic_version: Field required"
        )
    if "model" in body:
        raise invalid("model: Extra inputs are not permitted")
    if method == "streamRawPredict" and body.get("stream") is not True:
        raise invalid("stream: streamRawPredict requires `stream: true`")
    request = {k: v for k, v in body.items() if k != "anthropic_version"}
    return {**request, "model": name}


async def serve_claude(
    request: Request, resource: str, model: str, method: str, authorize: Callable[[], None]
) -> Response:
    """Serve ``:rawPredict`` / ``:streamRawPredict`` for a Claude ``model`` of Vertex's;
    ``authorize`` raises Vertex's 401/403 (a :class:`GoogleError`)."""
    state: SimState = request.app.state.sim
    try:
        if method not in ("rawPredict", "streamRawPredict"):
            raise GoogleError(404, "Not Found")
        authorize()
        name = CLAUDE_MODELS.get(model)
        if name is None:
            raise GoogleError(404, f"Publisher Model `{resource}` not found.")
    except GoogleError as error:
        return error_response(error)
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    call: dict[str, Any] = {
        "path": request.url.path,
        "model": model,
        "method": method,
        "body": body,
        "usage": None,
    }
    state.calls.append(call)
    if state.fail_next:
        status, error_body = state.fail_next.pop(0)
        return json_response(error_body, status)
    try:
        parsed = parse_messages_request(
            _anthropic_request(body, name, method), frozenset(CLAUDE_MODELS.values())
        )
    except AnthropicError as error:
        return json_response(error.body(), error.status)
    reply = plan_reply(parsed)
    prompt = cached_input(parsed, request.app.state.claude_prompt_cache)
    message = render_message(parsed, reply, prompt)
    call["usage"] = message["usage"]
    if not parsed.stream:
        return json_response(message)
    frames = render_events(parsed, reply, prompt)
    return StreamingResponse(iter(frames), media_type="text/event-stream")
