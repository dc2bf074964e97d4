"""The OpenAI protocol: requests pass through with the upstream model name; streams are
forwarded as bytes, peeking only for the usage chunk."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from unigate.channel_types import channel_type
from unigate.tokens import estimate_body_tokens, estimate_text_tokens, streamed_text
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    error_from_exception,
    error_from_upstream,
    relay_error,
)
from unigate_relay.sse import SSESplitter, event_data

_PATHS = {
    "chat.completions": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
_DONE = b"[DONE]"


def _usage(raw: Any, estimated: bool = False) -> common_pb2.Usage:
    if not isinstance(raw, dict):
        return common_pb2.Usage(estimated=True)
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    details = raw.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(raw.get("total_tokens") or prompt + completion),
        cached_tokens=cached,
        estimated=estimated,
    )


class OpenAIProvider(Provider):
    family: ClassVar[str] = "openai"
    channel_types: ClassVar[tuple[int, ...]] = (1, 8)
    endpoints: ClassVar[frozenset[str]] = frozenset(_PATHS)

    def _url(self, ctx: CallContext) -> str:
        base = ctx.channel.base_url
        if not base:
            ct = channel_type(ctx.channel.type)
            base = ct.default_base_url if ct else ""
        return base.rstrip("/") + _PATHS[ctx.request.endpoint]

    def _headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if ctx.channel.headers_json and ctx.channel.headers_json != "{}":
            headers.update(
                {str(k): str(v) for k, v in orjson.loads(ctx.channel.headers_json).items()}
            )
        headers["Authorization"] = f"Bearer {ctx.api_key}"
        return headers

    def _body(self, ctx: CallContext, *, stream: bool) -> bytes:
        req = ctx.request
        if req.model == req.upstream_model and (not stream or req.include_usage):
            # Nothing to change: pass the client's bytes through without re-encoding them.
            return req.body
        body = orjson.loads(req.body)
        body["model"] = ctx.request.upstream_model
        if stream:
            body["stream"] = True
            # Always ask for usage so the ledger is exact; the usage chunk is removed again
            # when the client did not ask for it.
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            options["include_usage"] = True
            body["stream_options"] = options
        return orjson.dumps(body)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        started = time.perf_counter()
        try:
            async with ctx.http.post(
                self._url(ctx),
                data=self._body(ctx, stream=False),
                headers=self._headers(ctx),
                timeout=ctx.timeout(),
            ) as resp:
                status, headers, content = resp.status, resp.headers, await resp.read()
        except UPSTREAM_ERRORS as exc:
            return relay_pb2.RelayResult(error=error_from_exception(exc))
        upstream_ms = int((time.perf_counter() - started) * 1000)
        if status >= 400:
            return relay_pb2.RelayResult(
                error=error_from_upstream(status, content, headers, list(ctx.channel.keys)),
                upstream_ms=upstream_ms,
            )
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            return relay_pb2.RelayResult(
                error=relay_error(
                    502,
                    "The upstream provider returned invalid JSON.",
                    code="bad_upstream_response",
                    retryable=True,
                    upstream_status=status,
                ),
                upstream_ms=upstream_ms,
            )
        usage = data.get("usage") if isinstance(data, dict) else None
        result_usage = self._estimate_usage(ctx, data) if usage is None else _usage(usage)
        return relay_pb2.RelayResult(
            http_status=status,
            content_type="application/json",
            body=content,
            usage=result_usage,
            upstream_ms=upstream_ms,
        )

    def _estimate_usage(self, ctx: CallContext, data: Any) -> common_pb2.Usage:
        prompt = estimate_body_tokens(len(ctx.request.body))
        text = ""
        if isinstance(data, dict):
            for choice in data.get("choices") or []:
                message = choice.get("message") or {}
                text += str(message.get("content") or choice.get("text") or "")
        completion = estimate_text_tokens(text)
        return common_pb2.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            estimated=True,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        first_token_ms = 0
        usage: common_pb2.Usage | None = None
        content_events: list[bytes] = []
        saw_done = False
        include_usage = ctx.request.include_usage
        try:
            resp = await ctx.http.post(
                self._url(ctx),
                data=self._body(ctx, stream=True),
                headers=self._headers(ctx),
                timeout=ctx.timeout(),
            )
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        try:
            if resp.status >= 400:
                body = await resp.read()
                yield relay_pb2.RelayChunk(
                    end=relay_pb2.StreamEnd(
                        error=error_from_upstream(
                            resp.status, body, resp.headers, list(ctx.channel.keys)
                        )
                    )
                )
                return
            splitter = SSESplitter()
            async for raw in resp.content.iter_any():
                out = bytearray()
                for event in splitter.feed(raw):
                    data = event_data(event)
                    if data is None:
                        continue
                    if data == _DONE:
                        saw_done = True
                    elif b'"usage":{' in data or b'"usage": {' in data:
                        parsed = orjson.loads(data)
                        usage = _usage(parsed.get("usage"))
                        if not parsed.get("choices"):
                            if not include_usage:
                                continue
                        else:
                            content_events.append(data)
                    else:
                        if not first_token_ms:
                            first_token_ms = int((time.perf_counter() - started) * 1000)
                        if usage is None:
                            content_events.append(data)
                    out += event
                    out += b"\n\n"
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=error_from_exception(exc),
                    usage=usage or self._estimate_stream_usage(ctx, content_events),
                    first_token_ms=first_token_ms,
                )
            )
            return
        finally:
            # A stream not read to its end (client gone, error) must not go back to the pool.
            if saw_done:
                resp.release()
            else:
                resp.close()
        upstream_ms = int((time.perf_counter() - started) * 1000)
        final_usage = usage or self._estimate_stream_usage(ctx, content_events)
        if not saw_done:
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=relay_error(
                        502,
                        "The upstream stream ended before it was complete.",
                        code="upstream_stream_truncated",
                    ),
                    usage=final_usage,
                    first_token_ms=first_token_ms,
                    upstream_ms=upstream_ms,
                )
            )
            return
        yield relay_pb2.RelayChunk(
            end=relay_pb2.StreamEnd(
                usage=final_usage, first_token_ms=first_token_ms, upstream_ms=upstream_ms
            )
        )

    def _estimate_stream_usage(self, ctx: CallContext, events: list[bytes]) -> common_pb2.Usage:
        prompt = estimate_body_tokens(len(ctx.request.body))
        completion = estimate_text_tokens(streamed_text(events))
        return common_pb2.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            estimated=True,
        )
