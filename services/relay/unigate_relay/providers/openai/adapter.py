"""The OpenAI protocol: requests pass through with the upstream model name; streams are
forwarded as bytes, peeking only for usage."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from unigate.tokens import counted_usage, streamed_text
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    drained,
    error_from_exception,
    error_from_upstream,
    relay_error,
    stream_truncated,
)
from unigate_relay.providers.compatible import SPECS, CompatibleSpec
from unigate_relay.providers.compatible.spec import ENDPOINT_PATHS
from unigate_relay.providers.json_mode import as_json_object, needs_json_object
from unigate_relay.providers.openai.multipart import with_model
from unigate_relay.providers.openai.usage import usage_from_answer, usage_from_stream_event
from unigate_relay.providers.openai_shapes import usage_dict
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    let_go,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import SSESplitter, event_data

# OpenAI itself and "OpenAI-compatible" (the operator's base URL): OpenAI's /v1 layout.
_ALL_ENDPOINTS = frozenset(ENDPOINT_PATHS)
# OpenAI's reasoning models refuse max_tokens; max_completion_tokens works for every model.
_OPENAI = CompatibleSpec(
    1,
    "OpenAI",
    "https://api.openai.com",
    "/v1",
    _ALL_ENDPOINTS,
    chat_output_field="max_completion_tokens",
)
_OPENAI_COMPATIBLE = CompatibleSpec(8, "OpenAI-compatible", "", "/v1", _ALL_ENDPOINTS)
# One API's newer "OpenAI Compatible" (type 50): its base URL carries the version segment
# (``https://host/v1``, ``.../api/paas/v4``), so the request's own ``/v1`` is not added again.
_OPENAI_COMPATIBLE_VERSIONED = CompatibleSpec(50, "OpenAI Compatible", "", "", _ALL_ENDPOINTS)
_SPECS: dict[int, CompatibleSpec] = {
    1: _OPENAI,
    8: _OPENAI_COMPATIBLE,
    50: _OPENAI_COMPATIBLE_VERSIONED,
    **SPECS,
}


def spec_for(channel_type: int) -> CompatibleSpec:
    """The wire details of a channel type of this family (unknown types: OpenAI's layout)."""
    return _SPECS.get(channel_type, _OPENAI_COMPATIBLE)


# Endpoints whose streams take stream_options.include_usage (the Responses API always
# reports usage in its response.completed event and rejects the option).
_USAGE_OPTION = frozenset({"chat.completions", "completions"})
_DONE = b"[DONE]"
# Responses API streams end with one of these events instead of [DONE].
_FINAL_EVENTS = (
    b'"type":"response.completed"',
    b'"type":"response.incomplete"',
    b'"type":"response.failed"',
)


def _with_counted_usage(content: bytes, usage: common_pb2.Usage) -> bytes:
    """An answer whose ``usage`` is no count (FastGPT's 1/1/1) with the count it is billed
    by in its place, so that the client sees what the ledger holds."""
    data = decoded(content)
    if not isinstance(data, dict) or "usage" not in data:
        return content
    data["usage"] = usage_dict(usage)
    return orjson.dumps(data)


class OpenAIProvider(Provider):
    family: ClassVar[str] = "openai"
    channel_types: ClassVar[tuple[int, ...]] = tuple(sorted(_SPECS))
    endpoints: ClassVar[frozenset[str]] = _ALL_ENDPOINTS
    # Passed through: the provider decides (JSON-mode-only ones get json_object: json_mode).
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})

    def serves(self, endpoint: str, channel_type: int, upstream_model: str) -> bool:
        # DeepSeek, Mistral, ... serve chat only: their Responses API is the translated one.
        return endpoint in spec_for(channel_type).endpoints

    def spec(self, channel_type: int) -> CompatibleSpec:
        """The wire details of ``channel_type``; a provider package that speaks the OpenAI
        protocol from a package of its own (Cloudflare) gives its own."""
        return spec_for(channel_type)

    def upstream_error(
        self, status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
    ) -> relay_pb2.RelayError:
        """The relay's error for the provider's HTTP error answer (OpenAI's shapes here; a
        provider with its own error envelope maps its own)."""
        return error_from_upstream(status, body, headers, secrets)

    def _refused(
        self, ctx: CallContext, status: int, body: bytes, headers: CIMultiDictProxy[str]
    ) -> relay_pb2.RelayError:
        """The error of an HTTP error answer: the spec's own envelope first (FastGPT's), then
        :meth:`upstream_error`."""
        secrets = list(ctx.channel.keys)
        own = self.spec(ctx.channel.type).error_map
        found = own(status, body, secrets) if own is not None else None
        return found or self.upstream_error(status, body, headers, secrets)

    def chat_output_field(self, channel_type: int) -> str:
        return self.spec(channel_type).chat_output_field

    def _unsupported(self, ctx: CallContext) -> relay_pb2.RelayError | None:
        spec = self.spec(ctx.channel.type)
        if ctx.request.endpoint in spec.endpoints:
            return None
        return relay_error(
            400,
            f"{spec.name} does not support `{ctx.request.endpoint}`.",
            type="invalid_request_error",
            code="unsupported_endpoint",
        )

    def _url(self, ctx: CallContext) -> str:
        return self.spec(ctx.channel.type).url(
            ctx.channel.base_url,
            ctx.request.endpoint,
            ctx.request.upstream_model,
            ctx.channel.config_json,
        )

    def _headers(self, ctx: CallContext, *, form: bool) -> dict[str, str]:
        # For a rebuilt form aiohttp sets the Content-Type (with its boundary) itself.
        defaults = {} if form else {"Content-Type": ctx.request.content_type or "application/json"}
        return channel_headers(ctx, defaults, self.spec(ctx.channel.type).auth_headers(ctx.api_key))

    def _body(self, ctx: CallContext, *, stream: bool) -> bytes | aiohttp.FormData:
        req = ctx.request
        spec = self.spec(ctx.channel.type)
        model = spec.body_model(req.endpoint, req.upstream_model, ctx.channel.config_json)
        if req.content_type.startswith("multipart/"):
            if req.model == model:
                return req.body
            return with_model(req.body, req.content_type, model)
        wants_usage_option = (
            stream
            and req.endpoint in _USAGE_OPTION
            and not req.include_usage
            and spec.asks_stream_usage_for(ctx.channel.config_json)
        )
        json_mode = (
            spec.response_format == "json_object"
            and req.endpoint == "chat.completions"
            and needs_json_object(req.body)
        )
        if req.model == model and not wants_usage_option and not spec.drop_fields and not json_mode:
            # Nothing to change: pass the client's bytes through without re-encoding them.
            return req.body
        body = orjson.loads(req.body)
        body["model"] = model
        for field in spec.drop_fields:
            body.pop(field, None)
        if json_mode:
            as_json_object(body)
        if wants_usage_option:
            # Always ask for usage so the ledger is exact; the usage chunk is removed again
            # when the client did not ask for it.
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            options["include_usage"] = True
            body["stream_options"] = options
        return orjson.dumps(body)

    async def _post(self, ctx: CallContext, *, stream: bool) -> aiohttp.ClientResponse:
        body = self._body(ctx, stream=stream)
        headers = self._headers(ctx, form=isinstance(body, aiohttp.FormData))
        return await open_upstream(ctx, self._url(ctx), data=body, headers=headers)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        if (unsupported := self._unsupported(ctx)) is not None:
            return relay_pb2.RelayResult(error=unsupported)
        answer = await read_answer(self._post(ctx, stream=False))
        if isinstance(answer, relay_pb2.RelayResult):
            return answer
        status, content, upstream_ms = answer.status, answer.content, answer.upstream_ms
        if status >= 400:
            return answer.failed(self._refused(ctx, status, content, answer.headers))
        content_type = answer.headers.get("Content-Type", "application/json")
        if "json" in content_type and answer.json() is None:
            return answer.unreadable()
        measure = functools.partial(
            usage_from_answer,
            ctx.request.endpoint,
            ctx.request.body,
            content_type,
            content,
            ctx.request.upstream_model,
            request_content_type=ctx.request.content_type,
            reported=self.spec(ctx.channel.type).reports_usage,
        )
        # An upload's usage may mean demuxing its audio (up to 25 MB): off the event loop.
        upload = ctx.request.content_type.startswith("multipart/")
        usage = await asyncio.to_thread(measure) if upload else measure()
        if not self.spec(ctx.channel.type).reports_usage:
            content = _with_counted_usage(content, usage)
        return relay_pb2.RelayResult(
            http_status=status,
            content_type=content_type,
            body=content,
            usage=usage,
            upstream_ms=upstream_ms,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        first_token_ms = 0
        usage: common_pb2.Usage | None = None
        content_events: list[bytes] = []
        finished = reusable = False
        include_usage = ctx.request.include_usage
        usage_path = self.spec(ctx.channel.type).stream_usage_path
        # A provider whose usage is no count (FastGPT) is counted from the text instead.
        reads_usage = self.spec(ctx.channel.type).reports_usage
        if (unsupported := self._unsupported(ctx)) is not None:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=unsupported))
            return
        try:
            resp = await self._post(ctx, stream=True)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        try:
            if resp.status >= 400:
                body = await resp.read()
                yield relay_pb2.RelayChunk(
                    end=relay_pb2.StreamEnd(
                        error=self._refused(ctx, resp.status, body, resp.headers)
                    )
                )
                return
            splitter = SSESplitter()
            async for raw in resp.content.iter_any():
                out = bytearray()
                reported: common_pb2.Usage | None = None
                for event in splitter.feed(raw):
                    data = event_data(event)
                    if data is None:
                        continue
                    if data == _DONE or any(f in data for f in _FINAL_EVENTS):
                        finished = True
                    found = (
                        usage_from_stream_event(data, usage_path)
                        if data != _DONE and reads_usage
                        else None
                    )
                    if found is not None:
                        usage, usage_only = found
                        reported = usage
                        if usage_only and not include_usage:
                            continue
                    elif data != _DONE:
                        # Azure opens with a chunk of content filter results and no choices.
                        if not first_token_ms and b'"choices":[]' not in data:
                            first_token_ms = int((time.perf_counter() - started) * 1000)
                        if usage is None:
                            content_events.append(data)
                    out += event
                    out += b"\n\n"
                if reported is not None:
                    # Before the chunk that carried it (and may have been dropped): see
                    # RelayChunk.usage.
                    yield relay_pb2.RelayChunk(usage=reported)
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
                if finished:
                    # Nothing follows the last event: end now, even if the provider holds
                    # the response open (the client's terminal frame waits for this end).
                    reusable = await drained(resp)
                    break
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
            let_go(resp, reusable=reusable)
        upstream_ms = int((time.perf_counter() - started) * 1000)
        final_usage = usage or self._estimate_stream_usage(ctx, content_events)
        if not finished:
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=stream_truncated(),
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
        req = ctx.request
        return counted_usage(req.endpoint, req.body, req.upstream_model, streamed_text(events))
