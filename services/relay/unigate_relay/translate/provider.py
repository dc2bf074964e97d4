"""Serving the Messages API (``messages``, ``messages.count_tokens``) through any family that
serves ``chat.completions``: the Anthropic request is translated to OpenAI chat, the family's
own adapter runs it, and its answer or stream is translated back.

Token counting on such a channel is local (:mod:`unigate.tokenizer`, OpenAI's accounting of
the translated request): the provider has no counting endpoint to ask, and a count is never
billed (its usage is zero).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import orjson

from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.errors import conversion_error
from unigate_relay.providers.anthropic.wire import (
    COUNT_TOKENS,
    MESSAGES,
    ConversionError,
    JSONObject,
)
from unigate_relay.providers.base import CallContext, Provider, relay_error
from unigate_relay.sse import SSESplitter, event_data
from unigate_relay.translate.request import messages_to_chat
from unigate_relay.translate.response import chat_to_message
from unigate_relay.translate.stream import MessagesStreamWriter

CHAT = "chat.completions"


def _chat_request(ctx: CallContext) -> tuple[JSONObject, bytes]:
    """(the client's Anthropic request, the OpenAI chat body for the channel)."""
    try:
        request = orjson.loads(ctx.request.body)
    except orjson.JSONDecodeError:
        raise ConversionError("The request body is not valid JSON.") from None
    if not isinstance(request, dict):
        raise ConversionError("The request body must be a JSON object.")
    return request, orjson.dumps(messages_to_chat(request, ctx.request.upstream_model))


def _inner(ctx: CallContext, body: bytes) -> CallContext:
    request = relay_pb2.RelayRequest()
    request.CopyFrom(ctx.request)
    request.endpoint = CHAT
    request.body = body
    request.content_type = "application/json"
    # The usage chunk is what message_delta reports, so always ask for it.
    request.include_usage = True
    return CallContext(request=request, channel=ctx.channel, api_key=ctx.api_key, http=ctx.http)


class MessagesOverChat(Provider):
    """The Messages API in front of another family's chat completions."""

    family: ClassVar[str] = "translate"
    channel_types: ClassVar[tuple[int, ...]] = ()
    endpoints: ClassVar[frozenset[str]] = frozenset({MESSAGES, COUNT_TOKENS})

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            _, body = _chat_request(ctx)
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=conversion_error(exc))
        if ctx.request.endpoint == COUNT_TOKENS:
            counted = prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
            return relay_pb2.RelayResult(
                http_status=200,
                content_type="application/json",
                body=orjson.dumps({"input_tokens": counted}),
                usage=common_pb2.Usage(),
            )
        result = await self.inner.call(_inner(ctx, body))
        if result.HasField("error"):
            return result
        try:
            completion = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            completion = None
        if not isinstance(completion, dict):
            result.Clear()
            result.error.CopyFrom(
                relay_error(
                    502,
                    "The upstream provider returned invalid JSON.",
                    code="bad_upstream_response",
                    retryable=True,
                )
            )
            return result
        result.body = orjson.dumps(chat_to_message(completion, ctx.request.model, result.usage))
        result.content_type = "application/json"
        return result

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            _, body = _chat_request(ctx)
        except ConversionError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=conversion_error(exc)))
            return
        writer = MessagesStreamWriter(
            ctx.request.model, prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
        )
        splitter = SSESplitter()
        async for chunk in self.inner.stream(_inner(ctx, body)):
            if chunk.HasField("end"):
                end = chunk.end
                if not end.HasField("error"):
                    yield relay_pb2.RelayChunk(data=writer.finish(end.usage))
                # Before anything was sent an error still allows failover; after, the
                # gateway ends the stream with an Anthropic error event.
                yield chunk
                return
            if chunk.HasField("usage"):
                yield chunk
                continue
            out = b""
            for frame in splitter.feed(chunk.data):
                data = event_data(frame)
                if data is None or data == b"[DONE]":
                    continue
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                out += writer.feed(parsed)
            if out or not writer.started:
                yield relay_pb2.RelayChunk(data=(b"" if writer.started else writer.start()) + out)
