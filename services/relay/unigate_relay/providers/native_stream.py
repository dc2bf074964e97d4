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

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

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
from unigate_relay.providers.openai_shapes import DONE_FRAME
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


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


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
                        first_token_ms = _ms_since(started)
                out += frames
            if out:
                yield relay_pb2.RelayChunk(data=bytes(out))
            if error is not None or translator.finished:
                break
    except UPSTREAM_ERRORS as exc:
        error = error_from_exception(exc)
    finally:
        # A finished stream leaves the connection reusable; an abandoned one does not.
        if translator.finished:
            resp.release()
        else:
            resp.close()
    upstream_ms = _ms_since(started)
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
    if error is None:
        tail = translator.usage_frame(usage) if req.include_usage else b""
        yield relay_pb2.RelayChunk(data=tail + DONE_FRAME)
    yield relay_pb2.RelayChunk(
        end=relay_pb2.StreamEnd(
            usage=usage, first_token_ms=first_token_ms, upstream_ms=upstream_ms, error=error
        )
    )
