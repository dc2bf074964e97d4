"""Relaying a provider's own SSE stream as OpenAI chunks, for the translating adapters.

Baidu, Hunyuan, DashScope (native) and Cohere stream server-sent events whose ``data:``
payloads are JSON objects in the provider's shape. Each adapter has a translator that turns
one payload into OpenAI ``data:`` frames; :func:`relay_sse_stream` does the rest the same way
for all of them: splits the events, parses the payloads, stops on an error the provider sends
inside the stream, stamps the first token, releases or closes the connection, and ends with
``[DONE]`` and the one ``StreamEnd`` (the provider's usage or an estimate, ``first_token_ms``,
``upstream_ms``, the error if any).
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, Self

import aiohttp
import orjson

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    error_from_exception,
    stream_truncated,
)
from unigate_relay.providers.openai_shapes import DONE_FRAME, chunk_frame, completion_id
from unigate_relay.providers.upstream import let_go, ms_since
from unigate_relay.sse import SSESplitter, event_data

# An error the provider signals by the event itself (e.g. ``event: error``), given the raw
# event and its ``data:`` payload, before the payload is parsed.
EventError = Callable[[bytes, bytes], relay_pb2.RelayError | None]
# An error object the provider sends in place of a stream payload (parsed JSON object).
PayloadError = Callable[[dict[str, Any]], relay_pb2.RelayError | None]


class StreamTranslator(Protocol):
    """What :func:`relay_sse_stream` needs of a provider's stream translator."""

    @property
    def finished(self) -> bool:
        """Whether the provider has sent its last event (the stream is complete)."""
        ...

    @property
    def usage(self) -> common_pb2.Usage | None:
        """The provider's usage report, once it has sent one."""
        ...

    @property
    def text(self) -> list[str]:
        """Every piece of generated text (and tool call) so far, for estimating usage."""
        ...

    def feed(self, payload: dict[str, Any]) -> bytes:
        """The OpenAI ``data:`` frames for one provider payload (possibly none)."""
        ...

    def usage_frame(self, usage: common_pb2.Usage) -> bytes:
        """The usage-only chunk sent before ``[DONE]`` when the client asked for usage."""
        ...


class ChunkTranslator(abc.ABC):
    """The skeleton of a :class:`StreamTranslator`: one completion's id, model and creation
    time stamped on every OpenAI chunk, the first delta opened with the assistant role, and
    the finish and usage chunks. A provider's translator implements only :meth:`feed`."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._id, self._model, self._created = id, model, created
        self._opened = False
        self.finished = False
        self.usage: common_pb2.Usage | None = None
        self.text: list[str] = []

    @classmethod
    def for_call(cls, ctx: CallContext) -> Self:
        """A translator for the answer to ``ctx``'s request: a new completion id, the upstream
        model, created now."""
        return cls(id=completion_id(), model=ctx.request.upstream_model, created=int(time.time()))

    @abc.abstractmethod
    def feed(self, payload: dict[str, Any]) -> bytes:
        """The OpenAI ``data:`` frames for one provider payload (possibly none)."""

    def frame(self, delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
        """One ``chat.completion.chunk`` frame of this completion."""
        return chunk_frame(
            id=self._id, model=self._model, created=self._created, delta=delta, finish_reason=finish
        )

    def finish(self, reason: str | None) -> bytes:
        """The last event came: the empty delta carrying the finish reason."""
        self.finished = True
        return self.frame({}, reason)

    def delta(self, text: str, calls: list[dict[str, Any]] | None) -> bytes:
        """The frame for one piece of an answer: ``text`` and/or tool ``calls`` (already in
        OpenAI's shape), the first piece opened with the assistant role. Both are kept in
        :attr:`text` for estimating usage. No frame for a piece with nothing in it."""
        delta: dict[str, Any] = {}
        if not self._opened:
            delta["role"] = "assistant"
            self._opened = True
        if text or not calls:
            delta["content"] = text
        self.text.append(text)
        if calls:
            delta["tool_calls"] = calls
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    self.text.append(str(function.get("name") or ""))
                    self.text.append(str(function.get("arguments") or ""))
        if text or calls or "role" in delta:
            return self.frame(delta)
        return b""

    def usage_frame(self, usage: common_pb2.Usage) -> bytes:
        """The usage-only chunk sent before ``[DONE]`` when the client asked for usage."""
        return chunk_frame(id=self._id, model=self._model, created=self._created, usage=usage)


def stream_ending(
    ctx: CallContext,
    usage: common_pb2.Usage,
    usage_frame: Callable[[common_pb2.Usage], bytes],
    *,
    error: relay_pb2.RelayError | None,
    first_token_ms: int,
    upstream_ms: int,
    tail: bytes = b"",
) -> list[relay_pb2.RelayChunk]:
    """The last chunks of a stream relayed as OpenAI's: unless it failed, ``tail`` (what the
    answer still owes, e.g. its finish chunk), the usage chunk when the client asked for it
    (``usage_frame``) and ``[DONE]``; then the one ``StreamEnd`` with the usage billed."""
    chunks = []
    if error is None:
        owed = usage_frame(usage) if ctx.request.include_usage else b""
        chunks.append(relay_pb2.RelayChunk(data=tail + owed + DONE_FRAME))
    end = relay_pb2.StreamEnd(
        usage=usage, first_token_ms=first_token_ms, upstream_ms=upstream_ms, error=error
    )
    chunks.append(relay_pb2.RelayChunk(end=end))
    return chunks


async def relay_sse_stream(
    ctx: CallContext,
    resp: aiohttp.ClientResponse,
    started: float,
    translator: StreamTranslator,
    *,
    event_error: EventError | None = None,
    payload_error: PayloadError | None = None,
    finished_error: Callable[[], relay_pb2.RelayError | None] | None = None,
    usage_on_empty_failure: bool = True,
) -> AsyncIterator[relay_pb2.RelayChunk]:
    """Relay the SSE stream of ``resp`` (an accepted streaming request, sent at ``started``,
    a ``time.perf_counter()`` value) as OpenAI-framed ``RelayChunk`` data, then one ``end``.

    ``event_error`` and ``payload_error`` detect a failure the provider reports inside the
    stream; the first one found ends it. ``finished_error`` is asked, once a stream has
    completed without other failure, whether the answer itself is a failure (e.g. Cohere's
    ``ERROR`` finish reason). With ``usage_on_empty_failure`` false, a stream that fails
    before producing any frame ends without usage (nothing to bill); otherwise a failed
    stream reports the provider's usage or an estimate, like a completed one.
    """
    first_token_ms = 0
    produced = False
    error: relay_pb2.RelayError | None = None
    splitter = SSESplitter()
    try:
        async for raw in resp.content.iter_any():
            out = bytearray()
            for event in splitter.feed(raw):
                data = event_data(event)
                if data is None:
                    continue
                if event_error is not None and (error := event_error(event, data)) is not None:
                    break
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(parsed, dict):
                    continue
                if payload_error is not None and (error := payload_error(parsed)) is not None:
                    break
                frames = translator.feed(parsed)
                if frames:
                    produced = True
                    if not first_token_ms:
                        first_token_ms = ms_since(started)
                out += frames
            if out:
                yield relay_pb2.RelayChunk(data=bytes(out))
            if error is not None or translator.finished:
                break
    except UPSTREAM_ERRORS as exc:
        error = error_from_exception(exc)
    finally:
        # A finished stream leaves the connection reusable; an abandoned one does not.
        let_go(resp, reusable=translator.finished)
    upstream_ms = ms_since(started)
    if error is None and not translator.finished:
        error = stream_truncated()
    if error is None and finished_error is not None:
        error = finished_error()
    if error is not None and not produced and not usage_on_empty_failure:
        yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error, upstream_ms=upstream_ms))
        return
    req = ctx.request
    usage = translator.usage or counted_usage(
        req.endpoint, req.body, req.upstream_model, "".join(translator.text)
    )
    ending = stream_ending(
        ctx,
        usage,
        translator.usage_frame,
        error=error,
        first_token_ms=first_token_ms,
        upstream_ms=upstream_ms,
    )
    for chunk in ending:
        yield chunk
