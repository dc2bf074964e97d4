"""Alibaba DashScope, native protocol (channel type 17 with config ``{"protocol":
"native"}``, routed as internal type 1017; plain type 17 stays on the OpenAI-compatible
mode of the "openai" family).

``POST {base}/api/v1/services/aigc/text-generation/generation`` with ``Authorization:
Bearer <key>``; a stream is asked for with ``X-DashScope-SSE: enable`` and comes as SSE
events ``id:`` / ``event:result`` / ``:HTTP_STATUS/200`` / ``data:{...}``, or
``event:error`` with the error object (https://help.aliyun.com/zh/model-studio/qwen-api-reference).
"""

from __future__ import annotations

import asyncio
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
    error_from_exception,
    relay_error,
)
from unigate_relay.providers.dashscope.convert import (
    Unsupported,
    finish_reason,
    generation_body,
    usage_of,
)
from unigate_relay.providers.dashscope.errors import map_error, parse
from unigate_relay.providers.openai_shapes import (
    DONE_FRAME,
    chunk_frame,
    completion_body,
    completion_id,
)
from unigate_relay.sse import SSESplitter, event_data

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com"
GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"


def _event_name(event: bytes) -> str:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode(errors="replace")
    return "message"


def _choice(answer: dict[str, Any]) -> dict[str, Any]:
    output = answer.get("output")
    choices = output.get("choices") if isinstance(output, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


class DashScopeProvider(Provider):
    family: ClassVar[str] = "dashscope"
    channel_types: ClassVar[tuple[int, ...]] = (1017,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    async def _post(self, ctx: CallContext, *, stream: bool) -> aiohttp.ClientResponse:
        body = generation_body(
            orjson.loads(ctx.request.body), ctx.request.upstream_model, stream=stream
        )
        headers = {"Content-Type": "application/json"}
        if ctx.channel.headers_json and ctx.channel.headers_json != "{}":
            headers.update(
                {str(k): str(v) for k, v in orjson.loads(ctx.channel.headers_json).items()}
            )
        headers["Authorization"] = f"Bearer {ctx.api_key}"
        if stream:
            headers["X-DashScope-SSE"] = "enable"
            headers["Accept"] = "text/event-stream"
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        return await asyncio.wait_for(
            ctx.http.post(
                base + GENERATION_PATH,
                data=orjson.dumps(body),
                headers=headers,
                timeout=ctx.timeout(),
            ),
            ctx.first_byte_seconds(),
        )

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        secrets = list(ctx.channel.keys)
        started = time.perf_counter()
        try:
            async with await self._post(ctx, stream=False) as resp:
                status, content = resp.status, await resp.read()
        except Unsupported as exc:
            return relay_pb2.RelayResult(
                error=relay_error(400, str(exc), type="invalid_request_error")
            )
        except UPSTREAM_ERRORS as exc:
            return relay_pb2.RelayResult(error=error_from_exception(exc))
        upstream_ms = int((time.perf_counter() - started) * 1000)
        if status >= 400:
            return relay_pb2.RelayResult(
                error=map_error(status, *parse(content), secrets), upstream_ms=upstream_ms
            )
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not _choice(answer):
            return relay_pb2.RelayResult(
                error=relay_error(
                    502,
                    "The upstream provider returned an answer that could not be read.",
                    code="bad_upstream_response",
                    retryable=True,
                    upstream_status=status,
                ),
                upstream_ms=upstream_ms,
            )
        choice = _choice(answer)
        raw = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        assert isinstance(raw, dict)
        message: dict[str, Any] = {"content": raw.get("content") or ""}
        if raw.get("tool_calls"):
            message["tool_calls"] = [
                {k: v for k, v in c.items() if k != "index"} for c in raw["tool_calls"]
            ]
            message["content"] = message["content"] or None
        usage = usage_of(answer)
        return relay_pb2.RelayResult(
            http_status=200,
            content_type="application/json",
            body=completion_body(
                id=completion_id(),
                model=ctx.request.upstream_model,
                message=message,
                finish_reason=finish_reason(choice.get("finish_reason")) or "stop",
                usage=usage,
            ),
            usage=usage,
            upstream_ms=upstream_ms,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        secrets = list(ctx.channel.keys)
        req = ctx.request
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, stream=True)
        except Unsupported as exc:
            error = relay_error(400, str(exc), type="invalid_request_error")
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        if resp.status >= 400 or "event-stream" not in resp.headers.get("Content-Type", ""):
            try:
                async with resp:
                    status, content = resp.status, await resp.read()
            except UPSTREAM_ERRORS as exc:
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
                return
            error = map_error(status if status >= 400 else 502, *parse(content), secrets)
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        id, created = completion_id(), int(time.time())
        model = req.upstream_model
        opened = finished = False
        first_token_ms = 0
        usage: common_pb2.Usage | None = None
        text: list[str] = []
        failure: relay_pb2.RelayError | None = None
        splitter = SSESplitter()
        try:
            async for raw in resp.content.iter_any():
                out = bytearray()
                for event in splitter.feed(raw):
                    data = event_data(event)
                    if data is None:
                        continue
                    if _event_name(event) == "error":
                        failure = map_error(502, *parse(data), secrets)
                        break
                    try:
                        parsed = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(parsed, dict):
                        continue
                    if isinstance(parsed.get("usage"), dict):
                        usage = usage_of(parsed)
                    choice = _choice(parsed)
                    message = choice.get("message")
                    message = message if isinstance(message, dict) else {}
                    delta: dict[str, Any] = {}
                    if not opened:
                        delta["role"] = "assistant"
                        opened = True
                    piece = str(message.get("content") or "")
                    if piece or not message.get("tool_calls"):
                        delta["content"] = piece
                    if message.get("tool_calls"):
                        delta["tool_calls"] = message["tool_calls"]
                        text.extend(
                            str((c.get("function") or {}).get("name") or "")
                            + str((c.get("function") or {}).get("arguments") or "")
                            for c in message["tool_calls"]
                            if isinstance(c, dict)
                        )
                    text.append(piece)
                    if piece or "tool_calls" in delta or "role" in delta:
                        out += chunk_frame(id=id, model=model, created=created, delta=delta)
                        if not first_token_ms:
                            first_token_ms = int((time.perf_counter() - started) * 1000)
                    finish = finish_reason(choice.get("finish_reason"))
                    if finish is not None:
                        finished = True
                        out += chunk_frame(
                            id=id, model=model, created=created, delta={}, finish_reason=finish
                        )
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
                if failure is not None or finished:
                    break
        except UPSTREAM_ERRORS as exc:
            failure = error_from_exception(exc)
        finally:
            if finished:
                resp.release()
            else:
                resp.close()
        upstream_ms = int((time.perf_counter() - started) * 1000)
        final = usage or counted_usage(req.endpoint, req.body, model, "".join(text))
        if failure is None and not finished:
            failure = relay_error(
                502,
                "The upstream stream ended before it was complete.",
                code="upstream_stream_truncated",
            )
        if failure is None:
            tail = (
                chunk_frame(id=id, model=model, created=created, usage=final)
                if req.include_usage
                else b""
            )
            yield relay_pb2.RelayChunk(data=tail + DONE_FRAME)
        yield relay_pb2.RelayChunk(
            end=relay_pb2.StreamEnd(
                usage=final, first_token_ms=first_token_ms, upstream_ms=upstream_ms, error=failure
            )
        )
