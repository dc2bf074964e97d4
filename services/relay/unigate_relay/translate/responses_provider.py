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

from typing import Any, ClassVar

import orjson

from unigate.responses_items import new_id
from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.base import CallContext, client_mistake
from unigate_relay.translate.over_chat import (
    CHAT,
    OverChat,
    StreamWriter,
    load_request,
    local_count,
)
from unigate_relay.translate.responses_history import with_history
from unigate_relay.translate.responses_request import responses_to_chat
from unigate_relay.translate.responses_response import chat_to_response, response_skeleton
from unigate_relay.translate.responses_stream import ResponsesStreamWriter

RESPONSES = "responses"
INPUT_TOKENS = "responses.input_tokens"


class ResponsesOverChat(OverChat):
    """The Responses API in front of another family's chat completions."""

    endpoints: ClassVar[frozenset[str]] = frozenset({RESPONSES, INPUT_TOKENS})

    def conversion_error(self, exc: ConversionError) -> relay_pb2.RelayError:
        return client_mistake(exc.message, code="unsupported_parameter", param=exc.param)

    def _chat_request(self, ctx: CallContext) -> tuple[JSONObject, bytes]:
        """(the client's Responses request with its history, the chat body for the channel)."""
        request = load_request(with_history(ctx.request, keep_previous_id=True))
        field = self.inner.chat_output_field(ctx.channel.type)
        chat = responses_to_chat(request, ctx.request.upstream_model, field)
        return request, orjson.dumps(chat)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            request, body = self._chat_request(ctx)
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=self.conversion_error(exc))
        if ctx.request.endpoint == INPUT_TOKENS:
            counted = prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
            return local_count({"object": "response.input_tokens", "input_tokens": counted})

        def translate(completion: Any, usage: common_pb2.Usage) -> JSONObject | None:
            if not isinstance(completion, dict):
                return None
            return chat_to_response(completion, request, ctx.request.model, new_id("resp"), usage)

        return await self.call_inner(ctx, CHAT, body, translate)

    def open_stream(self, ctx: CallContext) -> tuple[bytes, StreamWriter]:
        request, body = self._chat_request(ctx)
        return body, ResponsesStreamWriter(
            response_skeleton(request, ctx.request.model, new_id("resp"))
        )
