"""GenAI spans and attributes (OpenTelemetry GenAI conventions): the gateway's attempt span
per channel tried and the relay's upstream span per provider call."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from unigate.channel_types import channel_type
from unigate.telemetry.setup import (
    RETRY_BAGGAGE,
    capture_content,
    tracer,
)
from unigate.v1 import common_pb2

_OPERATIONS = {
    "chat.completions": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def genai_system(type_id: int) -> str:
    """The provider's declared gen_ai.system (the GenAI conventions' value where they name
    one, else the first word of its name)."""
    ct = channel_type(type_id)
    return ct.gen_ai_system if ct else f"channel_type_{type_id}"


def genai_operation(endpoint: str) -> str:
    return _OPERATIONS.get(endpoint, endpoint)


def response_model(data: bytes) -> str:
    """The ``model`` a provider answered with, from a JSON body or the first SSE event.

    Only the first few KB are scanned: OpenAI-shaped answers name the model before the
    choices, and nothing else of the body is read.
    """
    m = _MODEL.search(data[:4096])
    return m.group(1).decode(errors="replace") if m else ""


def genai_attributes(
    *, endpoint: str, type_id: int, model: str, channel_id: int, retry: int | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.system": genai_system(type_id),
        "gen_ai.operation.name": genai_operation(endpoint),
        "gen_ai.request.model": model,
        "unigate.channel.id": channel_id,
    }
    if retry is not None:
        attrs["unigate.retry"] = retry
    return attrs


def start_attempt(
    *, endpoint: str, type_id: int, model: str, channel_id: int, retry: int, request_body: bytes
) -> tuple[Span, context.Context]:
    """The gateway's span for one try of one channel, and the context to call the relay in
    (it carries the retry number as baggage, so the relay's span can say it too)."""
    attrs = genai_attributes(
        endpoint=endpoint, type_id=type_id, model=model, channel_id=channel_id, retry=retry
    )
    if capture_content():
        attrs["gen_ai.input.messages"] = request_body.decode(errors="replace")
    span = tracer().start_span(
        f"attempt {attrs['gen_ai.operation.name']} {model}", attributes=attrs
    )
    ctx = baggage.set_baggage(RETRY_BAGGAGE, str(retry), trace.set_span_in_context(span))
    return span, ctx


def start_upstream(
    *, endpoint: str, type_id: int, model: str, channel_id: int, request_body: bytes
) -> Span:
    """The relay's CLIENT span around the provider call."""
    retry = baggage.get_baggage(RETRY_BAGGAGE)
    attrs = genai_attributes(
        endpoint=endpoint,
        type_id=type_id,
        model=model,
        channel_id=channel_id,
        retry=int(retry) if isinstance(retry, str) and retry.isdigit() else None,
    )
    if capture_content():
        attrs["gen_ai.input.messages"] = request_body.decode(errors="replace")
    return tracer().start_span(
        f"{attrs['gen_ai.operation.name']} {model}", kind=SpanKind.CLIENT, attributes=attrs
    )


def note_response(span: Span, data: bytes) -> None:
    """Record what the answer's first bytes say (the model; the content only if allowed)."""
    model = response_model(data)
    if model:
        span.set_attribute("gen_ai.response.model", model)


def end_genai_span(
    span: Span,
    *,
    usage: common_pb2.Usage | None,
    error_code: str = "",
    retryable: bool | None = None,
    outcome: str | None = None,
    response: bytes = b"",
) -> None:
    if response:
        note_response(span, response)
        if capture_content():
            span.set_attribute("gen_ai.output.messages", response.decode(errors="replace"))
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.estimated:
            span.set_attribute("unigate.usage.estimated", True)
    span.set_attribute("unigate.outcome", outcome or ("error" if error_code else "success"))
    if error_code:
        span.set_attribute("error.type", error_code)
        span.set_status(Status(StatusCode.ERROR))
    if retryable is not None:
        span.set_attribute("unigate.retryable", retryable)
    span.end()
