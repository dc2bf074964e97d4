"""Baidu ERNIE (Qianfan, channel type 15): an access token exchanged from the channel's
``APIKey|SecretKey``, one endpoint per model, ERNIE's request and answer shapes, and errors
that come as ``error_code`` in an HTTP 200 body.

Reference: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/jlil56u11 (chat),
https://cloud.baidu.com/doc/WENXINWORKSHOP/s/alj562vvu (Embedding-V1); One API's
``relay/adaptor/baidu`` for the model table and the key format.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.baidu.convert import (
    Unsupported,
    chat_body,
    embedding_body,
    finish_reason_of,
    tool_calls_of,
    usage_of,
)
from unigate_relay.providers.baidu.errors import TOKEN_CODES, baidu_error, map_error
from unigate_relay.providers.baidu.models import endpoint_path
from unigate_relay.providers.baidu.stream import ChunkTranslator
from unigate_relay.providers.baidu.token import AccessTokens, TokenError
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    client_mistake,
    credentials_rejected,
    error_from_exception,
    unreadable_answer,
    upstream_unreachable,
)
from unigate_relay.providers.native_stream import relay_sse_stream
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    json_result,
    open_upstream,
    read_refusal,
)

DEFAULT_BASE_URL = "https://aip.baidubce.com"


def _token_error(exc: TokenError) -> relay_pb2.RelayError:
    return credentials_rejected(401) if exc.rejected else upstream_unreachable()


class BaiduProvider(Provider):
    family: ClassVar[str] = "baidu"
    channel_types: ClassVar[tuple[int, ...]] = (15,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions", "embeddings"})

    def __init__(self) -> None:
        self.tokens = AccessTokens()

    @staticmethod
    def _host(ctx: CallContext) -> str:
        return (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _request(self, ctx: CallContext, *, stream: bool) -> dict[str, Any]:
        request = orjson.loads(ctx.request.body)
        if ctx.request.endpoint == "embeddings":
            return embedding_body(request)
        return chat_body(request, stream=stream)

    async def _open(
        self, ctx: CallContext, body: dict[str, Any]
    ) -> tuple[aiohttp.ClientResponse, str]:
        """POST ``body`` to the model's endpoint with a valid token; the response and the
        token it was sent with. Raises TokenError or one of UPSTREAM_ERRORS."""
        host = self._host(ctx)
        token = await self.tokens.get(ctx.http, host, ctx.api_key, ctx.first_byte_seconds())
        path = endpoint_path(
            ctx.request.upstream_model, embeddings=ctx.request.endpoint == "embeddings"
        )
        resp = await open_upstream(
            ctx,
            host + path,
            params={"access_token": token},
            data=orjson.dumps(body),
            headers=channel_headers(ctx, {"Content-Type": "application/json"}),
        )
        return resp, token

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        secrets = list(ctx.channel.keys)
        try:
            body = self._request(ctx, stream=False)
        except Unsupported as exc:
            return relay_pb2.RelayResult(error=client_mistake(str(exc)))
        started = time.perf_counter()
        for attempt in range(2):
            try:
                resp, token = await self._open(ctx, body)
                async with resp:
                    status, content = resp.status, await resp.read()
            except TokenError as exc:
                return relay_pb2.RelayResult(error=_token_error(exc))
            except UPSTREAM_ERRORS as exc:
                return relay_pb2.RelayResult(error=error_from_exception(exc))
            upstream_ms = int((time.perf_counter() - started) * 1000)
            answer = decoded(content)
            if not isinstance(answer, dict):
                return relay_pb2.RelayResult(
                    error=unreadable_answer(status), upstream_ms=upstream_ms
                )
            failure = baidu_error(answer)
            if failure is not None and failure[0] in TOKEN_CODES and attempt == 0:
                # The cached token expired or was revoked early: exchange it and try again.
                self.tokens.invalidate(self._host(ctx), ctx.api_key, token)
                continue
            if failure is not None:
                return relay_pb2.RelayResult(
                    error=map_error(*failure, secrets), upstream_ms=upstream_ms
                )
            if status >= 400:
                return relay_pb2.RelayResult(
                    error=unreadable_answer(status), upstream_ms=upstream_ms
                )
            if ctx.request.endpoint == "embeddings":
                return self._embeddings_result(ctx, answer, upstream_ms)
            return self._chat_result(ctx, answer, upstream_ms)
        raise AssertionError("unreachable: the second attempt always returns")

    def _chat_result(
        self, ctx: CallContext, answer: dict[str, Any], upstream_ms: int
    ) -> relay_pb2.RelayResult:
        usage = usage_of(answer)
        calls = tool_calls_of(answer)
        message: dict[str, Any] = {"content": str(answer.get("result") or "") or None}
        if calls is not None:
            message["tool_calls"] = calls
        elif message["content"] is None:
            message["content"] = ""
        return json_result(
            completion_body(
                id=completion_id(),
                model=ctx.request.upstream_model,
                message=message,
                finish_reason=finish_reason_of(answer, calls is not None),
                usage=usage,
                created=int(answer.get("created") or 0) or None,
            ),
            usage,
            upstream_ms,
        )

    def _embeddings_result(
        self, ctx: CallContext, answer: dict[str, Any], upstream_ms: int
    ) -> relay_pb2.RelayResult:
        usage = usage_of(answer)
        usage = common_pb2.Usage(
            prompt_tokens=usage.prompt_tokens, total_tokens=usage.prompt_tokens
        )
        data = [
            {
                "object": "embedding",
                "index": int(item.get("index") or 0),
                "embedding": item.get("embedding"),
            }
            for item in answer.get("data") or []
            if isinstance(item, dict)
        ]
        body = {
            "object": "list",
            "data": data,
            "model": ctx.request.upstream_model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
        return json_result(orjson.dumps(body), usage, upstream_ms)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        secrets = list(ctx.channel.keys)
        try:
            body = self._request(ctx, stream=True)
        except Unsupported as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=client_mistake(str(exc))))
            return
        started = time.perf_counter()
        resp: aiohttp.ClientResponse | None = None
        for attempt in range(2):
            try:
                resp, token = await self._open(ctx, body)
            except TokenError as exc:
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=_token_error(exc)))
                return
            except UPSTREAM_ERRORS as exc:
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
                return
            if "event-stream" in resp.headers.get("Content-Type", ""):
                break
            # Not a stream: Qianfan refused the request with a JSON error object.
            refusal = await read_refusal(resp)
            if isinstance(refusal, relay_pb2.RelayError):
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refusal))
                return
            status, failure = refusal.status, baidu_error(refusal.json())
            if failure is not None and failure[0] in TOKEN_CODES and attempt == 0:
                self.tokens.invalidate(self._host(ctx), ctx.api_key, token)
                continue
            error = (
                map_error(*failure, secrets) if failure is not None else unreadable_answer(status)
            )
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        assert resp is not None
        translator = ChunkTranslator.for_call(ctx)

        def in_band_error(payload: dict[str, Any]) -> relay_pb2.RelayError | None:
            failure = baidu_error(payload)
            return map_error(*failure, secrets) if failure is not None else None

        async for chunk in relay_sse_stream(
            ctx, resp, started, translator, payload_error=in_band_error
        ):
            yield chunk
