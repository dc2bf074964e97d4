"""Serving the Responses API (``responses``, ``responses.input_tokens``) through any family
that serves ``chat.completions``: the Responses request is translated to OpenAI chat, the
family's own adapter runs it (and takes it on to its native protocol), and its answer or
stream is translated back.

An earlier conversation (``previous_response_id``) arrives already resolved by the gateway,
as the stored items of the earlier turns in ``RelayRequest.responses_history``: they are
replayed ahead of this turn's input, since no translated family keeps state.

Input-token counting is local (:mod:`unigate.tokenizer`, OpenAI's accounting of the
translated request), for every family: it is never billed (its usage is zero).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import orjson

from unigate.responses_items import new_id
from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.base import CallContext, Provider, client_mistake, relay_error
from unigate_relay.sse import SSESplitter, event_data
from unigate_relay.translate.responses_history import with_history
from unigate_relay.translate.responses_request import responses_to_chat
from unigate_relay.translate.responses_response import chat_to_response, response_skeleton
from unigate_relay.translate.responses_stream import ResponsesStreamWriter

CHAT = "chat.completions"
RESPONSES = "responses"
INPUT_TOKENS = "responses.input_tokens"


def _conversion_error(exc: ConversionError) -> relay_pb2.RelayError:
    return client_mistake(exc.message, code="unsupported_parameter", param=exc.param)


class ResponsesOverChat(Provider):
    """The Responses API in front of another family's chat completions."""

    family: ClassVar[str] = "translate"
    channel_types: ClassVar[tuple[int, ...]] = ()
    endpoints: ClassVar[frozenset[str]] = frozenset({RESPONSES, INPUT_TOKENS})

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def _chat_request(self, ctx: CallContext) -> tuple[JSONObject, bytes]:
        """(the client's Responses request with its history, the chat body for the channel)."""
        try:
            request = orjson.loads(with_history(ctx.request, keep_previous_id=True))
        except orjson.JSONDecodeError:
            raise ConversionError("The request body is not valid JSON.") from None
        if not isinstance(request, dict):
            raise ConversionError("The request body must be a JSON object.")
        field = self.inner.chat_output_field(ctx.channel.type)
        chat = responses_to_chat(request, ctx.request.upstream_model, field)
        return request, orjson.dumps(chat)

    def _inner(self, ctx: CallContext, body: bytes) -> CallContext:
        request = relay_pb2.RelayRequest()
        request.CopyFrom(ctx.request)
        request.endpoint = CHAT
        request.body = body
        request.content_type = "application/json"
        request.ClearField("responses_history")
        # The usage chunk is what response.completed reports, so always ask for it.
        request.include_usage = True
        return CallContext(request=request, channel=ctx.channel, api_key=ctx.api_key, http=ctx.http)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            request, body = self._chat_request(ctx)
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=_conversion_error(exc))
        if ctx.request.endpoint == INPUT_TOKENS:
            counted = prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
            return relay_pb2.RelayResult(
                http_status=200,
                content_type="application/json",
                body=orjson.dumps({"object": "response.input_tokens", "input_tokens": counted}),
                usage=common_pb2.Usage(),
            )
        result = await self.inner.call(self._inner(ctx, body))
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
        response = chat_to_response(
            completion, request, ctx.request.model, new_id("resp"), result.usage
        )
        result.body = orjson.dumps(response)
        result.content_type = "application/json"
        return result

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            request, body = self._chat_request(ctx)
        except ConversionError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=_conversion_error(exc)))
            return
        writer = ResponsesStreamWriter(
            response_skeleton(request, ctx.request.model, new_id("resp"))
        )
        splitter = SSESplitter()
        async for chunk in self.inner.stream(self._inner(ctx, body)):
            if chunk.HasField("end"):
                end = chunk.end
                if not end.HasField("error"):
                    # The terminal event: the relay's TerminalHold keeps it for the StreamEnd.
                    yield relay_pb2.RelayChunk(data=writer.finish(end.usage))
                # Before anything was sent an error still allows failover; after, the
                # gateway ends the stream with an error event.
                yield chunk
                return
            if chunk.HasField("usage"):
                yield chunk
                continue
            # response.created first: its snapshot must hold no output yet.
            out = b"" if writer.started else writer.start()
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
