"""The model methods both front doors serve (Gemini API and Vertex AI): ``generateContent``,
``streamGenerateContent`` (``alt=sse``: CRLF-separated ``data:`` events; otherwise one JSON
array) and the state the tests inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from unigate_sim.gemini.errors import GoogleError, invalid, unknown_field
from unigate_sim.gemini.reply import (
    check_signatures,
    plan,
    prompt_tokens,
    render,
    render_events,
    sse_frame,
)
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


# Vertex AI's CountTokensRequest: the parts of a GenerateContentRequest that are counted.
_VERTEX_COUNT_FIELDS = frozenset({"contents", "systemInstruction", "tools", "model", "instances"})


def count_tokens_answer(body: Any, *, vertex: bool) -> Response:
    """``countTokens``, counted as ``generateContent`` reports ``promptTokenCount``. The
    Gemini API takes ``contents`` or a whole ``generateContentRequest`` (with its ``model``),
    never both; Vertex AI takes ``contents`` with ``systemInstruction`` and ``tools``."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    allowed = _VERTEX_COUNT_FIELDS if vertex else {"contents", "generateContentRequest"}
    unknown = set(body) - allowed
    if unknown:
        raise unknown_field(sorted(unknown)[0], "")
    if "contents" in body and "generateContentRequest" in body:
        raise invalid("* CountTokensRequest: contents and generate_content_request are exclusive")
    inner = body.get("generateContentRequest")
    if isinstance(inner, dict):
        if not str(inner.get("model") or "").startswith("models/"):
            raise invalid("* CountTokensRequest.generate_content_request.model: is required")
        request = check_request({k: v for k, v in inner.items() if k != "model"})
    else:
        request = check_request({k: v for k, v in body.items() if k not in ("model", "instances")})
    total = prompt_tokens(request)
    if vertex:
        return json_response({"totalTokens": total, "totalBillableCharacters": total * 4})
    return json_response(
        {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    )
