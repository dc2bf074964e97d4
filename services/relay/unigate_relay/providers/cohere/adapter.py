"""Cohere (channel type 35) over its v2 API: ``POST /v2/chat`` (whole or SSE stream),
``/v2/embed`` and ``/v2/rerank`` with ``Authorization: Bearer <key>``.

References: https://docs.cohere.com/reference/chat, /reference/chat-stream, /reference/embed,
/reference/rerank, /reference/errors; One API and New API ``cohere`` adaptors (channel type,
rerank through the gateway).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    client_mistake,
    error_from_exception,
    relay_error,
)
from unigate_relay.providers.cohere.errors import map_error
from unigate_relay.providers.cohere.request import (
    Unsupported,
    chat_body,
    embed_body,
    rerank_body,
)
from unigate_relay.providers.cohere.response import (
    FAILED_REASONS,
    chat_message,
    chat_usage,
    embeddings_body,
    finish_reason,
    rerank_answer,
)
from unigate_relay.providers.cohere.stream import EventTranslator
from unigate_relay.providers.native_stream import relay_sse_stream
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    open_upstream,
    read_answer,
    read_refusal,
)

DEFAULT_BASE_URL = "https://api.cohere.com"
_PATHS = {"chat.completions": "/v2/chat", "embeddings": "/v2/embed", "rerank": "/v2/rerank"}


def _failed_generation(reason: str) -> relay_pb2.RelayError:
    return relay_error(
        502,
        f"The upstream provider failed to generate an answer (finish reason {reason}).",
        code="upstream_error",
        retryable=True,
        upstream_status=502,
    )


class CohereProvider(Provider):
    family: ClassVar[str] = "cohere"
    channel_types: ClassVar[tuple[int, ...]] = (35,)
    endpoints: ClassVar[frozenset[str]] = frozenset(_PATHS)
    # Cohere's own response_format (json_object, with a schema).
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})

    @staticmethod
    def _config(ctx: CallContext) -> dict[str, Any]:
        if not ctx.channel.config_json or ctx.channel.config_json == "{}":
            return {}
        loaded = orjson.loads(ctx.channel.config_json)
        return loaded if isinstance(loaded, dict) else {}

    def _url(self, ctx: CallContext) -> str:
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        # One API's channels may hold the base with a version suffix.
        for suffix in ("/v1", "/v2"):
            base = base.removesuffix(suffix)
        return base + _PATHS[ctx.request.endpoint]

    def _headers(self, ctx: CallContext, *, stream: bool) -> dict[str, str]:
        accept = "text/event-stream" if stream else "application/json"
        return channel_headers(
            ctx,
            {"Content-Type": "application/json", "Accept": accept},
            {"Authorization": f"Bearer {ctx.api_key}"},
        )

    async def _post(
        self, ctx: CallContext, body: dict[str, Any], *, stream: bool
    ) -> aiohttp.ClientResponse:
        return await open_upstream(
            ctx, self._url(ctx), data=orjson.dumps(body), headers=self._headers(ctx, stream=stream)
        )

    def _body(self, ctx: CallContext, *, stream: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the client's request, Cohere's body); raises Unsupported."""
        request = orjson.loads(ctx.request.body)
        model = ctx.request.upstream_model
        endpoint = ctx.request.endpoint
        if endpoint == "chat.completions":
            return request, chat_body(request, model, stream=stream)
        if endpoint == "embeddings":
            return request, embed_body(request, model, self._config(ctx))
        if endpoint == "rerank":
            return request, rerank_body(request, model)[0]
        raise Unsupported(f"Cohere does not support `{endpoint}`.")

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            request, body = self._body(ctx, stream=False)
        except Unsupported as exc:
            return relay_pb2.RelayResult(error=client_mistake(str(exc)))
        reply = await read_answer(self._post(ctx, body, stream=False))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        upstream_ms = reply.upstream_ms
        if reply.status >= 400:
            return reply.failed(
                map_error(reply.status, reply.content, reply.headers, list(ctx.channel.keys))
            )
        answer = reply.json_object()
        if answer is None:
            return reply.unreadable()
        model = ctx.request.upstream_model
        endpoint = ctx.request.endpoint
        if endpoint == "embeddings":
            encoding = str(request.get("encoding_format") or "float")
            out, usage = embeddings_body(answer, model, encoding)
            data = orjson.dumps(out)
        elif endpoint == "rerank":
            _, documents = rerank_body(request, model)
            out, usage = rerank_answer(
                answer, model, documents, bool(request.get("return_documents"))
            )
            data = orjson.dumps(out)
        else:
            reason = str(answer.get("finish_reason") or "")
            if reason in FAILED_REASONS:
                return relay_pb2.RelayResult(
                    error=_failed_generation(reason), upstream_ms=upstream_ms
                )
            message = chat_message(answer.get("message"))
            usage = chat_usage(answer.get("usage")) or self._estimate(ctx, message)
            data = completion_body(
                id=completion_id(),
                model=model,
                message=message,
                finish_reason=finish_reason(reason),
                usage=usage,
            )
        return json_result(data, usage, upstream_ms)

    @staticmethod
    def _estimate(ctx: CallContext, message: dict[str, Any]) -> common_pb2.Usage:
        calls = "".join(
            c["function"]["name"] + c["function"]["arguments"]
            for c in message.get("tool_calls") or []
        )
        text = str(message.get("content") or "") + calls
        req = ctx.request
        return counted_usage(req.endpoint, req.body, req.upstream_model, text)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        if ctx.request.endpoint != "chat.completions":
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=client_mistake("Only chat completions can be streamed.")
                )
            )
            return
        try:
            _, body = self._body(ctx, stream=True)
        except Unsupported as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=client_mistake(str(exc))))
            return
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, body, stream=True)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        if resp.status >= 400:
            refusal = await read_refusal(resp)
            refused = (
                refusal
                if isinstance(refusal, relay_pb2.RelayError)
                else map_error(
                    refusal.status, refusal.content, refusal.headers, list(ctx.channel.keys)
                )
            )
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
            return
        translator = EventTranslator.for_call(ctx)

        def failed_generation() -> relay_pb2.RelayError | None:
            reason = translator.failed_reason
            return _failed_generation(reason) if reason else None

        # A stream that fails before its first frame ends without usage (nothing to bill).
        async for chunk in relay_sse_stream(
            ctx,
            resp,
            started,
            translator,
            finished_error=failed_generation,
            usage_on_empty_failure=False,
        ):
            yield chunk
