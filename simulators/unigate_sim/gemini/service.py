"""The model methods both front doors serve (Gemini API and Vertex AI): ``generateContent``,
``streamGenerateContent`` (``alt=sse``: CRLF-separated ``data:`` events; otherwise one JSON
array) and the state the tests inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from unigate_sim.gemini.errors import GoogleError, invalid
from unigate_sim.gemini.reply import check_signatures, plan, render, render_events, sse_frame
from unigate_sim.gemini.validate import check_request


@dataclass
class SimState:
    """What tests inspect and steer: ``calls`` (one ``{"path", "model", "method", "body"}``
    per authenticated request to a served model), ``fail_next`` (``(status, body)`` answers
    used instead of serving, one per request)."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_response(error: GoogleError) -> Response:
    return json_response(error.body(), error.code)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid(
            "Invalid JSON payload received. Unexpected token.\n" + raw[:40].decode(errors="replace")
        ) from None


def generate(body: Any, model: str, method: str, sse: bool) -> Response:
    """Serve ``generateContent`` or ``streamGenerateContent`` for a validated model."""
    checked = check_request(body)
    check_signatures(checked, model)
    answer = plan(checked, model)
    if method == "generateContent":
        return json_response(render(answer))
    events = render_events(answer)
    if not sse:
        return json_response(events)

    async def frames() -> Any:
        for event in events:
            yield sse_frame(event)

    return StreamingResponse(frames(), media_type="text/event-stream")
