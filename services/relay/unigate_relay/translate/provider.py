"""Serving the Messages API (``messages``, ``messages.count_tokens``) through any family that
serves ``chat.completions``: the Anthropic request is translated to OpenAI chat, the family's
own adapter runs it, and its answer or stream is translated back.

Token counting on such a channel is local (:mod:`unigate.tokenizer`, OpenAI's accounting of
the translated request): the provider has no counting endpoint to ask, and a count is never
billed (its usage is zero).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.wire import (
    COUNT_TOKENS,
    MESSAGES,
    ConversionError,
    JSONObject,
)
from unigate_relay.providers.base import CallContext
from unigate_relay.translate.over_chat import (
    CHAT,
    OverChat,
    StreamWriter,
    load_request,
    local_count,
)
from unigate_relay.translate.request import messages_to_chat
from unigate_relay.translate.response import chat_to_message
from unigate_relay.translate.stream import MessagesStreamWriter


def _chat_body(ctx: CallContext) -> bytes:
    """The OpenAI chat body for the client's Anthropic request."""
    return orjson.dumps(
        messages_to_chat(load_request(ctx.request.body), ctx.request.upstream_model)
    )


class MessagesOverChat(OverChat):
    """The Messages API in front of another family's chat completions."""

    endpoints: ClassVar[frozenset[str]] = frozenset({MESSAGES, COUNT_TOKENS})

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            body = _chat_body(ctx)
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=self.conversion_error(exc))
        if ctx.request.endpoint == COUNT_TOKENS:
            counted = prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
            return local_count({"input_tokens": counted})

        def translate(completion: Any, usage: common_pb2.Usage) -> JSONObject | None:
            if not isinstance(completion, dict):
                return None
            return chat_to_message(completion, ctx.request.model, usage)

        return await self.call_inner(ctx, CHAT, body, translate)

    def open_stream(self, ctx: CallContext) -> tuple[bytes, StreamWriter]:
        body = _chat_body(ctx)
        input_tokens = prompt_tokens(CHAT, body, ctx.request.upstream_model) or 0
        return body, MessagesStreamWriter(ctx.request.model, input_tokens)
