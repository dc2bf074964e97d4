"""What every translating wrapper shares (:class:`~.provider.MessagesOverChat`,
:class:`~.responses_provider.ResponsesOverChat`, :class:`~.gemini_provider.GeminiOverOpenAI`):
wrapping the family's own provider, reading the client's JSON body, handing the translated
OpenAI request to the family, turning its answer (or its SSE stream, through the protocol's
stream writer) back into the client's protocol, and the zero-usage answer of a local count.
An answer that cannot be translated is the same failure for every protocol
(:func:`~unigate_relay.providers.base.unreadable_but_used`): the client's 502 in its own
error shape, billed the usage the family reported.

Each wrapper keeps only its protocol's conversion: how its request becomes chat, which
writer turns chat chunks into its events, and how a mistake reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol

import orjson

from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.errors import conversion_error
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.base import CallContext, Provider, unreadable_but_used
from unigate_relay.sse import SSESplitter, event_data

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"


class StreamWriter(Protocol):
    """Feed OpenAI ``chat.completion.chunk`` objects; get the client protocol's frames."""

    def begin(self) -> bytes:
        """The frames that open the stream, the first time (b"" after, or when none)."""

    def feed(self, chunk: Any) -> bytes: ...

    def finish(self, usage: common_pb2.Usage) -> bytes: ...


def load_request(raw: bytes, invalid: str = "The request body is not valid JSON.") -> JSONObject:
    """The client's request object (ConversionError, with ``invalid`` for bad JSON)."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConversionError(invalid) from None
    if not isinstance(request, dict):
        raise ConversionError("The request body must be a JSON object.")
    return request


def inner_context(ctx: CallContext, endpoint: str, body: bytes) -> CallContext:
    """The call the family's own provider runs: the translated JSON body on ``endpoint``."""
    request = relay_pb2.RelayRequest()
    request.CopyFrom(ctx.request)
    request.endpoint = endpoint
    request.body = body
    request.content_type = "application/json"
    # Earlier Responses turns are already replayed in the translated body.
    request.ClearField("responses_history")
    # The usage chunk is what every protocol's last event reports, so always ask for it.
    request.include_usage = True
    return CallContext(request=request, channel=ctx.channel, api_key=ctx.api_key, http=ctx.http)


def local_count(answer: JSONObject) -> relay_pb2.RelayResult:
    """A count made here (:mod:`unigate.tokenizer`): never billed, so its usage is zero."""
    return relay_pb2.RelayResult(
        http_status=200,
        content_type="application/json",
        body=orjson.dumps(answer),
        usage=common_pb2.Usage(),
    )


class OverChat(Provider):
    """A protocol served in front of another family's chat completions (and embeddings)."""

    family: ClassVar[str] = "translate"
    channel_types: ClassVar[tuple[int, ...]] = ()

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def conversion_error(self, exc: ConversionError) -> relay_pb2.RelayError:
        """The client's 400 for a request its protocol's translation refuses."""
        return conversion_error(exc)

    async def call_inner(
        self,
        ctx: CallContext,
        endpoint: str,
        body: bytes,
        translate: Callable[[Any, common_pb2.Usage], JSONObject | None],
    ) -> relay_pb2.RelayResult:
        """Run ``body`` on the family's ``endpoint`` and ``translate`` its parsed answer
        (None: unreadable) into the client's protocol; the family's errors pass unchanged."""
        result = await self.inner.call(inner_context(ctx, endpoint, body))
        if result.HasField("error"):
            return result
        try:
            parsed = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            parsed = None
        answer = translate(parsed, result.usage)
        if answer is None:
            return unreadable_but_used(result.http_status or 200, result.usage, result.upstream_ms)
        result.body = orjson.dumps(answer)
        result.content_type = "application/json"
        return result

    def open_stream(self, ctx: CallContext) -> tuple[bytes, StreamWriter]:
        """(the streaming chat body for the family, the writer of the client's events);
        ConversionError when the request cannot be translated."""
        raise NotImplementedError

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            body, writer = self.open_stream(ctx)
        except ConversionError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=self.conversion_error(exc)))
            return
        splitter = SSESplitter()
        async for chunk in self.inner.stream(inner_context(ctx, CHAT, body)):
            if chunk.HasField("end"):
                if not chunk.end.HasField("error"):
                    # The terminal event: the relay's TerminalHold keeps it for the StreamEnd.
                    yield relay_pb2.RelayChunk(data=writer.finish(chunk.end.usage))
                # Before anything was sent an error still allows failover; after, the
                # gateway ends the stream with the protocol's error event.
                yield chunk
                return
            if chunk.HasField("usage"):
                yield chunk
                continue
            # The opening events first: a snapshot in them must hold no output yet.
            out = writer.begin()
            for frame in splitter.feed(chunk.data):
                data = event_data(frame)
                if data is None or data == b"[DONE]":
                    continue
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                out += writer.feed(parsed)
            if out:
                yield relay_pb2.RelayChunk(data=out)
