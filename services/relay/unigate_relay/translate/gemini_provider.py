"""Serving the gateway's Gemini-native routes through a family that speaks OpenAI's chat
completions and embeddings: the Gemini request is translated (:mod:`.gemini_request`), the
family's own adapter runs it, and its answer or stream is translated back
(:mod:`.gemini_response`).

``countTokens`` on such a channel is counted locally (:mod:`unigate.tokenizer`, OpenAI's
accounting of the translated request), and never billed: its usage is zero.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from unigate import gemini_endpoints as gemini
from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.base import CallContext
from unigate_relay.translate.gemini_request import (
    count_request,
    embed_to_embeddings,
    generate_to_chat,
)
from unigate_relay.translate.gemini_response import (
    GenerateStreamWriter,
    chat_to_generate,
    embeddings_to_gemini,
)
from unigate_relay.translate.over_chat import (
    CHAT,
    EMBEDDINGS,
    OverChat,
    StreamWriter,
    load_request,
    local_count,
)


def _request(ctx: CallContext) -> JSONObject:
    return load_request(ctx.request.body, "Invalid JSON payload received.")


class GeminiOverOpenAI(OverChat):
    """The Gemini-native routes in front of another family's chat and embeddings."""

    endpoints: ClassVar[frozenset[str]] = gemini.ENDPOINTS

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        endpoint = ctx.request.endpoint
        model = ctx.request.upstream_model
        try:
            request = _request(ctx)
            if endpoint in gemini.EMBEDDING_ENDPOINTS:
                batch = endpoint == gemini.BATCH_EMBED
                body = orjson.dumps(embed_to_embeddings(batch, request, model))
                return await self.call_inner(
                    ctx, EMBEDDINGS, body, lambda answer, _: embeddings_to_gemini(answer, batch)
                )
            source = count_request(request) if endpoint == gemini.COUNT_TOKENS else request
            chat = orjson.dumps(generate_to_chat(source, model, stream=False))
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=self.conversion_error(exc))
        if endpoint == gemini.COUNT_TOKENS:
            return local_count({"totalTokens": prompt_tokens(CHAT, chat, model) or 0})

        def translate(completion: Any, usage: common_pb2.Usage) -> JSONObject | None:
            if not isinstance(completion, dict):
                return None
            return chat_to_generate(completion, ctx.request.model or model, usage)

        return await self.call_inner(ctx, CHAT, chat, translate)

    def open_stream(self, ctx: CallContext) -> tuple[bytes, StreamWriter]:
        model = ctx.request.upstream_model
        chat = orjson.dumps(generate_to_chat(_request(ctx), model, stream=True))
        return chat, GenerateStreamWriter(ctx.request.model or model)
