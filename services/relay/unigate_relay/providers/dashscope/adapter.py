"""Alibaba DashScope, native protocol (channel type 17 with config ``{"protocol":
"native"}``, routed as internal type 1017; plain type 17 stays on the OpenAI-compatible
mode of the "openai" family).

``POST {base}/api/v1/services/aigc/text-generation/generation`` with ``Authorization:
Bearer <key>``; a stream is asked for with ``X-DashScope-SSE: enable`` and comes as SSE
events ``id:`` / ``event:result`` / ``:HTTP_STATUS/200`` / ``data:{...}``, or
``event:error`` with the error object (https://help.aliyun.com/zh/model-studio/qwen-api-reference).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    client_mistake,
    error_from_exception,
)
from unigate_relay.providers.dashscope.convert import (
    Unsupported,
    finish_reason,
    first_choice,
    generation_body,
    usage_of,
)
from unigate_relay.providers.dashscope.errors import map_error, parse
from unigate_relay.providers.dashscope.stream import ChunkTranslator
from unigate_relay.providers.native_stream import relay_sse_stream
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    open_upstream,
    read_answer,
    read_refusal,
)

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com"
GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"


def _event_name(event: bytes) -> str:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode(errors="replace")
    return "message"


class DashScopeProvider(Provider):
    family: ClassVar[str] = "dashscope"
    channel_types: ClassVar[tuple[int, ...]] = (1017,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    async def _post(self, ctx: CallContext, *, stream: bool) -> aiohttp.ClientResponse:
        body = generation_body(
            orjson.loads(ctx.request.body), ctx.request.upstream_model, stream=stream
        )
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        if stream:
            auth.update({"X-DashScope-SSE": "enable", "Accept": "text/event-stream"})
        headers = channel_headers(ctx, {"Content-Type": "application/json"}, auth)
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        return await open_upstream(
            ctx, base + GENERATION_PATH, data=orjson.dumps(body), headers=headers
        )

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        secrets = list(ctx.channel.keys)
        try:
            reply = await read_answer(self._post(ctx, stream=False))
        except Unsupported as exc:
            return relay_pb2.RelayResult(error=client_mistake(str(exc)))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        upstream_ms = reply.upstream_ms
        if reply.status >= 400:
            return reply.failed(map_error(reply.status, *parse(reply.content), secrets))
        answer = reply.json_object()
        if answer is None or not first_choice(answer):
            return reply.unreadable(usage_of(answer) if answer is not None else None)
        choice = first_choice(answer)
        raw = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        assert isinstance(raw, dict)
        message: dict[str, Any] = {"content": raw.get("content") or ""}
        if raw.get("tool_calls"):
            message["tool_calls"] = [
                {k: v for k, v in c.items() if k != "index"} for c in raw["tool_calls"]
            ]
            message["content"] = message["content"] or None
        usage = usage_of(answer)
        return json_result(
            completion_body(
                id=completion_id(),
                model=ctx.request.upstream_model,
                message=message,
                finish_reason=finish_reason(choice.get("finish_reason")) or "stop",
                usage=usage,
            ),
            usage,
            upstream_ms,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        secrets = list(ctx.channel.keys)
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, stream=True)
        except Unsupported as exc:
            error = client_mistake(str(exc))
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        if resp.status >= 400 or "event-stream" not in resp.headers.get("Content-Type", ""):
            refusal = await read_refusal(resp)
            error = (
                refusal
                if isinstance(refusal, relay_pb2.RelayError)
                else map_error(
                    refusal.status if refusal.status >= 400 else 502,
                    *parse(refusal.content),
                    secrets,
                )
            )
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        translator = ChunkTranslator.for_call(ctx)

        def error_event(event: bytes, data: bytes) -> relay_pb2.RelayError | None:
            if _event_name(event) != "error":
                return None
            return map_error(502, *parse(data), secrets)

        async for chunk in relay_sse_stream(
            ctx, resp, started, translator, event_error=error_event
        ):
            yield chunk
