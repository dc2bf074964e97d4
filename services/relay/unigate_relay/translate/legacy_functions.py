"""OpenAI's legacy ``functions`` / ``function_call`` answered in their own shape by families
that translate them into tools.

A chat request that offers ``functions`` (and no ``tools``) gets, from OpenAI, a message with
``function_call: {name, arguments}`` and ``finish_reason: "function_call"``, streamed as
``delta.function_call`` pieces; clients written against that API (older LangChain agents,
``openai`` 0.x code) read nothing else. Every translating family (Claude, Gemini, Cohere, ...)
maps ``functions`` to its tools and answers in OpenAI's current ``tool_calls`` shape, so
this wrapper turns the answer back: the first tool call becomes the ``function_call`` (the
legacy API calls one function per turn; its id has no place there), ``tool_calls`` go, and
``finish_reason`` ``tool_calls`` becomes ``function_call``. The OpenAI family passes the
provider's own answer through untouched: OpenAI-like providers answer legacy requests
themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import CallContext, Provider
from unigate_relay.sse import SSESplitter, event_data

CHAT = "chat.completions"
_DONE = b"[DONE]"


def uses_legacy_functions(body: bytes) -> bool:
    """Whether a chat request body offers legacy ``functions`` and no ``tools``."""
    if b'"functions"' not in body:
        return False
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(request, dict) and bool(request.get("functions")) and not request.get("tools")


def _finish(reason: Any) -> Any:
    return "function_call" if reason == "tool_calls" else reason


def legacy_message(message: dict[str, Any]) -> None:
    """A whole assistant message's ``tool_calls`` as its ``function_call``, in place."""
    calls = message.pop("tool_calls", None)
    if isinstance(calls, list) and calls and isinstance(calls[0], dict):
        function = calls[0].get("function") or {}
        message["function_call"] = {
            "name": function.get("name", ""),
            "arguments": function.get("arguments", ""),
        }


def legacy_delta(delta: dict[str, Any]) -> None:
    """A stream delta's ``tool_calls`` pieces of the first call as ``function_call`` pieces,
    in place (pieces of any further call are dropped with the rest)."""
    calls = delta.pop("tool_calls", None)
    if not isinstance(calls, list):
        return
    piece: dict[str, Any] = {}
    for call in calls:
        if not isinstance(call, dict) or call.get("index", 0) != 0:
            continue
        function = call.get("function") or {}
        if isinstance(function.get("name"), str):
            piece["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            piece["arguments"] = piece.get("arguments", "") + function["arguments"]
    if piece:
        piece.setdefault("arguments", "")
        delta["function_call"] = piece


def legacy_completion(body: bytes) -> bytes:
    """A ``chat.completion`` body in the legacy shape (unreadable bodies are left alone)."""
    try:
        completion = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(completion, dict):
        return body
    for choice in completion.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            legacy_message(choice["message"])
            choice["finish_reason"] = _finish(choice.get("finish_reason"))
    return orjson.dumps(completion)


def legacy_frame(frame: bytes) -> bytes:
    """One SSE event (without its blank line) of a chat stream, in the legacy shape."""
    data = event_data(frame)
    if data is None or data == _DONE:
        return frame
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return frame
    if not isinstance(chunk, dict):
        return frame
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict):
            if isinstance(choice.get("delta"), dict):
                legacy_delta(choice["delta"])
            choice["finish_reason"] = _finish(choice.get("finish_reason"))
    return b"data: " + orjson.dumps(chunk)


class LegacyFunctions(Provider):
    """A translating family's chat answers to a ``functions`` request, in the legacy shape."""

    family: ClassVar[str] = "translate"
    channel_types: ClassVar[tuple[int, ...]] = ()
    endpoints: ClassVar[frozenset[str]] = frozenset({CHAT})

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def chat_output_field(self, channel_type: int) -> str:
        return self.inner.chat_output_field(channel_type)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        result = await self.inner.call(ctx)
        if not result.HasField("error") and result.body:
            result.body = legacy_completion(result.body)
        return result

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        splitter = SSESplitter()
        async for chunk in self.inner.stream(ctx):
            if chunk.HasField("data"):
                # Translating adapters send whole events; the splitter still carries a piece
                # of one over to the next chunk should that ever change.
                out = b"".join(legacy_frame(f) + b"\n\n" for f in splitter.feed(chunk.data))
                if not out:
                    continue
                chunk.data = out
            yield chunk


def answering_legacy(provider: Provider, request: relay_pb2.RelayRequest) -> Provider:
    """``provider``, or the legacy wrapper in front of it when a translating family serves a
    chat request that offers ``functions``."""
    if (
        request.endpoint == CHAT
        and provider.family != "openai"
        and uses_legacy_functions(request.body)
    ):
        return LegacyFunctions(provider)
    return provider
