"""Serving the gateway's Gemini-native routes through a family that speaks OpenAI's chat
completions and embeddings: the Gemini request is translated (:mod:`.gemini_request`), the
family's own adapter runs it, and its answer or stream is translated back
(:mod:`.gemini_response`).

``countTokens`` on such a channel is counted locally (:mod:`unigate.tokenizer`, OpenAI's
accounting of the translated request), and never billed: its usage is zero.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import orjson

from unigate import gemini_endpoints as gemini
from unigate.tokenizer import prompt_tokens
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.errors import conversion_error
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.base import CallContext, Provider, relay_error
from unigate_relay.sse import SSESplitter, event_data
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

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"


def _request(ctx: CallContext) -> JSONObject:
    try:
        request = orjson.loads(ctx.request.body)
    except orjson.JSONDecodeError:
        raise ConversionError("Invalid JSON payload received.") from None
    if not isinstance(request, dict):
        raise ConversionError("The request body must be a JSON object.")
    return request


def _inner(ctx: CallContext, endpoint: str, body: bytes) -> CallContext:
    request = relay_pb2.RelayRequest()
    request.CopyFrom(ctx.request)
    request.endpoint = endpoint
    request.body = body
    request.content_type = "application/json"
    # The usage chunk is what the last chunk's usageMetadata reports, so always ask for it.
    request.include_usage = True
    return CallContext(request=request, channel=ctx.channel, api_key=ctx.api_key, http=ctx.http)


def _unreadable() -> relay_pb2.RelayError:
    return relay_error(
        502,
        "The upstream provider returned an answer that could not be read.",
        code="bad_upstream_response",
        retryable=True,
    )


class GeminiOverOpenAI(Provider):
    """The Gemini-native routes in front of another family's chat and embeddings."""

    family: ClassVar[str] = "translate"
    channel_types: ClassVar[tuple[int, ...]] = ()
    endpoints: ClassVar[frozenset[str]] = gemini.ENDPOINTS

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        endpoint = ctx.request.endpoint
        model = ctx.request.upstream_model
        try:
            request = _request(ctx)
            if endpoint in gemini.EMBEDDING_ENDPOINTS:
                batch = endpoint == gemini.BATCH_EMBED
                body = embed_to_embeddings(batch, request, model)
                return await self._embed(ctx, body, batch)
            source = count_request(request) if endpoint == gemini.COUNT_TOKENS else request
            chat = orjson.dumps(generate_to_chat(source, model, stream=False))
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=conversion_error(exc))
        if endpoint == gemini.COUNT_TOKENS:
            counted = prompt_tokens(CHAT, chat, model) or 0
            return relay_pb2.RelayResult(
                http_status=200,
                content_type="application/json",
                body=orjson.dumps({"totalTokens": counted}),
                usage=common_pb2.Usage(),
            )
        result = await self.inner.call(_inner(ctx, CHAT, chat))
        if result.HasField("error"):
            return result
        try:
            completion = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            completion = None
        if not isinstance(completion, dict):
            return relay_pb2.RelayResult(error=_unreadable(), usage=result.usage)
        answer = chat_to_generate(completion, ctx.request.model or model, result.usage)
        result.body = orjson.dumps(answer)
        result.content_type = "application/json"
        return result

    async def _embed(
        self, ctx: CallContext, body: JSONObject, batch: bool
    ) -> relay_pb2.RelayResult:
        result = await self.inner.call(_inner(ctx, EMBEDDINGS, orjson.dumps(body)))
        if result.HasField("error"):
            return result
        try:
            answer = embeddings_to_gemini(orjson.loads(result.body), batch)
        except orjson.JSONDecodeError:
            answer = None
        if answer is None:
            return relay_pb2.RelayResult(error=_unreadable(), usage=result.usage)
        result.body = orjson.dumps(answer)
        result.content_type = "application/json"
        return result

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        model = ctx.request.upstream_model
        try:
            chat = orjson.dumps(generate_to_chat(_request(ctx), model, stream=True))
        except ConversionError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=conversion_error(exc)))
            return
        writer = GenerateStreamWriter(ctx.request.model or model)
        splitter = SSESplitter()
        async for chunk in self.inner.stream(_inner(ctx, CHAT, chat)):
            if chunk.HasField("end"):
                if not chunk.end.HasField("error"):
                    yield relay_pb2.RelayChunk(data=writer.finish(chunk.end.usage))
                # Before anything was sent an error still allows failover; after, the
                # gateway ends the stream with a Google error object.
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
            if out:
                yield relay_pb2.RelayChunk(data=out)
