"""The output bound auth granted a request (``RelayRequest.max_output_tokens``), applied.

Before the adapter converts the request, the client's own limit is lowered to the bound, or
the bound is injected where the client set none, in the client's shape; each family's
request builder carries that limit into its provider's field (Anthropic ``max_tokens``,
Gemini ``generationConfig.maxOutputTokens``, Cohere/Spark/DashScope ``max_tokens``, ERNIE
``max_output_tokens``), and OpenAI-protocol channels send it as their spec names it.

As a safety net for providers that ignore the limit, a chat, completions or Messages stream
that runs past the bound (counted with the model's tokenizer, only once its bytes could hold
that many tokens) is ended cleanly: a last chunk with ``finish_reason: "length"``, the usage
chunk if the client asked for one, ``[DONE]`` (Messages: the open block closed,
``stop_reason: "max_tokens"``, ``message_stop``); the tokens forwarded are billed, marked
estimated. (Responses API streams are not cut: their last event repeats the whole response.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from unigate import gemini_endpoints as gemini
from unigate.tokenizer import count_text
from unigate.tokens import counted_usage, sse_payloads, streamed_text
from unigate.v1 import relay_pb2
from unigate_relay.providers.upstream import decoded

# The client's fields that limit output, by endpoint; the last is injected when none is set
# (for chat the provider's choice, see :func:`bounded_body`).
_FIELDS: dict[str, tuple[str, ...]] = {
    "chat.completions": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "messages": ("max_tokens",),
}
# Streams whose framing the safety net knows how to end (OpenAI's, by chunk object, and
# Anthropic's Messages).
_CUT_OBJECTS = {"chat.completions": "chat.completion.chunk", "completions": "text_completion"}
_CUTTABLE = frozenset({*_CUT_OBJECTS, "messages"})


def bounded_body(endpoint: str, body: bytes, bound: int, chat_field: str = "max_tokens") -> bytes:
    """``body`` whose output limit is at most ``bound`` (``chat_field`` is the field a chat
    request gets when it names none); the same bytes when nothing changes."""
    if endpoint == gemini.GENERATE:
        return _bounded_gemini(body, bound)
    fields = _FIELDS.get(endpoint)
    if bound <= 0 or fields is None:
        return body
    request = decoded(body)
    if not isinstance(request, dict):
        return body
    present = [f for f in fields if isinstance(request.get(f), int)]
    changed = False
    for name in present:
        if request[name] > bound:
            request[name] = bound
            changed = True
    injected = chat_field if endpoint == "chat.completions" else fields[-1]
    if injected not in present and (not present or injected == "max_tokens"):
        # Also when the client named only max_completion_tokens: OpenAI-like providers
        # that read max_tokens alone would otherwise go unbounded.
        request[injected] = min([bound, *(request[f] for f in present)])
        changed = True
    return orjson.dumps(request) if changed else body


def _bounded_gemini(body: bytes, bound: int) -> bytes:
    """A ``generateContent`` body whose ``generationConfig.maxOutputTokens`` is at most
    ``bound`` (set to it when the client named none)."""
    request = decoded(body)
    if bound <= 0 or not isinstance(request, dict):
        return body
    config = request.get("generationConfig")
    if config is None:
        config = request["generationConfig"] = {}
    if not isinstance(config, dict):
        return body  # the provider (or the translation) refuses it on its own
    asked = config.get("maxOutputTokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and 0 < asked <= bound:
        return body
    config["maxOutputTokens"] = bound
    return orjson.dumps(request)


class _Guard:
    """The running output of one stream against its bound."""

    def __init__(self, request: relay_pb2.RelayRequest) -> None:
        self._request = request
        self._bound = request.max_output_tokens
        self._seen = 0
        # Counted only from the first chunk past ``_bound`` bytes (then of all sent so far).
        self._tokens: int | None = None
        self.sent: list[bytes] = []
        # The events of the last chunk that fit, when it was cut.
        self.tail = b""

    def admit(self, data: bytes) -> bytes | None:
        """``data`` (whole SSE events) if forwarding it keeps the stream within its bound;
        else None, after recording the events before the one that would pass it (in
        ``sent``, for :meth:`ending` to forward first)."""
        self._seen += len(data)
        if self._seen <= self._bound:
            # Every token is at least one byte: these bytes cannot hold too many.
            self.sent.append(data)
            return data
        if self._tokens is None:
            self._tokens = self._count(b"".join(self.sent))
        tokens = self._tokens + self._count(data)
        if tokens <= self._bound:
            self._tokens = tokens
            self.sent.append(data)
            return data
        # One read may carry many events: keep those that still fit.
        self.tail = b""
        for event in data.split(b"\n\n"):
            if not event.strip():
                continue
            event += b"\n\n"
            tokens = self._tokens + self._count(event)
            if tokens > self._bound:
                break
            self._tokens = tokens
            self.tail += event
        self.sent.append(self.tail)
        return None

    def _count(self, data: bytes) -> int:
        model = self._request.upstream_model or self._request.model
        return count_text(streamed_text(sse_payloads(data)), model)

    def ending(self) -> tuple[bytes, relay_pb2.StreamEnd]:
        """The frames that end the stream here, and its end with the usage forwarded."""
        req = self._request
        payloads = sse_payloads(b"".join(self.sent))
        usage = counted_usage(req.endpoint, req.body, req.upstream_model or req.model, "")
        usage.completion_tokens = count_text(
            streamed_text(payloads), req.upstream_model or req.model
        )
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        if req.endpoint == "messages":
            return _messages_ending(payloads, usage.completion_tokens), relay_pb2.StreamEnd(
                usage=usage
            )
        head = _last_chunk(payloads)
        chunk: dict[str, Any] = {
            "id": head.get("id", f"cut-{req.request_id}"),
            "object": _CUT_OBJECTS[req.endpoint],
            "created": head.get("created", int(time.time())),
            "model": head.get("model", req.model),
        }
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if req.endpoint == "chat.completions":
            choice["delta"] = {}
        else:
            choice.update(text="", logprobs=None)
        frames = [{**chunk, "choices": [choice]}]
        if req.include_usage:
            frames.append(
                {
                    **chunk,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                    },
                }
            )
        data = b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames)
        return data + b"data: [DONE]\n\n", relay_pb2.StreamEnd(usage=usage)


def _messages_ending(payloads: list[bytes], output_tokens: int) -> bytes:
    """Anthropic's end of a message cut at its limit: the open content block closed, then
    ``message_delta`` with ``stop_reason: "max_tokens"`` and ``message_stop``."""
    open_block: int | None = None
    for payload in payloads:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "content_block_start":
            open_block = event.get("index")
        elif kind == "content_block_stop":
            open_block = None
    events: list[dict[str, Any]] = []
    if open_block is not None:
        events.append({"type": "content_block_stop", "index": open_block})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def _last_chunk(payloads: list[bytes]) -> dict[str, Any]:
    for payload in reversed(payloads):
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return {}


async def bounded_stream(
    request: relay_pb2.RelayRequest, chunks: AsyncIterator[relay_pb2.RelayChunk]
) -> AsyncIterator[relay_pb2.RelayChunk]:
    """``chunks`` (a provider's stream), ended cleanly where it would pass the bound."""
    if request.max_output_tokens <= 0 or request.endpoint not in _CUTTABLE:
        async for chunk in chunks:
            yield chunk
        return
    guard = _Guard(request)
    try:
        async for chunk in chunks:
            if chunk.HasField("end") or guard.admit(chunk.data) is not None:
                yield chunk
                continue
            data, end = guard.ending()
            yield relay_pb2.RelayChunk(data=guard.tail + data)
            yield relay_pb2.RelayChunk(end=end)
            return
    finally:
        # Stops the upstream call when the stream was cut (or the caller left).
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
