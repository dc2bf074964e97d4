"""Coze bots (channel type 34) over Coze's v3 chat API, always streamed from Coze (see
``wire``): a streamed client request relays the events as OpenAI chunks; a non-streamed one
reads the whole event stream and answers one ``chat.completion``. The usage is Coze's
(``conversation.chat.completed``); counted and marked estimated only when Coze reports none.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
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
    error_from_upstream,
    stream_truncated,
    unreadable_answer,
)
from unigate_relay.providers.coze.errors import coze_error, error_of
from unigate_relay.providers.coze.stream import CozeTranslator, event_name
from unigate_relay.providers.coze.wire import CHAT_PATH, DEFAULT_BASE_URL, Unsupported, chat_body
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    json_result,
    let_go,
    ms_since,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import SSESplitter, event_data


def _config(config_json: str) -> dict[str, Any]:
    value = decoded(config_json.encode()) if config_json else None
    return value if isinstance(value, dict) else {}


def _events(splitter: SSESplitter, raw: bytes) -> Iterator[dict[str, Any]]:
    for event in splitter.feed(raw):
        data = event_data(event)
        if data is None:
            continue
        yield {"event": event_name(event), "data": decoded(data)}


class CozeProvider(Provider):
    family: ClassVar[str] = "coze"
    channel_types: ClassVar[tuple[int, ...]] = (34,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    @staticmethod
    def _body(ctx: CallContext) -> bytes:
        chat = decoded(ctx.request.body)
        if not isinstance(chat, dict):
            raise Unsupported("The request body must be a JSON object.")
        config = _config(ctx.channel.config_json)
        return orjson.dumps(chat_body(chat, ctx.request.upstream_model, config))

    async def _post(self, ctx: CallContext, body: bytes) -> aiohttp.ClientResponse:
        url = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/") + CHAT_PATH
        headers = channel_headers(
            ctx,
            {"Content-Type": "application/json", "Accept": "text/event-stream"},
            {"Authorization": f"Bearer {ctx.api_key}"},
        )
        return await open_upstream(ctx, url, data=body, headers=headers)

    @staticmethod
    def _refusal(
        ctx: CallContext, status: int, content_type: str, content: bytes, headers: Any
    ) -> relay_pb2.RelayError | None:
        """The error of an answer that is not an event stream (Coze answers a refused request
        with a JSON ``{"code", "msg"}``, whatever its HTTP status)."""
        secrets = list(ctx.channel.keys)
        if "event-stream" in content_type and status < 400:
            return None
        found = error_of(decoded(content), status, secrets)
        if found is not None:
            return found
        if status >= 400:
            return error_from_upstream(status, content, headers, secrets)
        return unreadable_answer(status)

    @staticmethod
    def _failure(ctx: CallContext, translator: CozeTranslator) -> relay_pb2.RelayError | None:
        failure = translator.failure
        if failure is None:
            return None
        code = failure.get("code")
        return coze_error(
            code if isinstance(code, int) else 0,
            str(failure.get("msg") or ""),
            200,
            list(ctx.channel.keys),
        )

    @staticmethod
    def _usage(ctx: CallContext, translator: CozeTranslator) -> common_pb2.Usage:
        req = ctx.request
        return translator.usage or counted_usage(
            req.endpoint, req.body, req.upstream_model, "".join(translator.text)
        )

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            body = self._body(ctx)
        except Unsupported as exc:
            return relay_pb2.RelayResult(error=client_mistake(str(exc)))
        reply = await read_answer(self._post(ctx, body))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        content_type = reply.headers.get("Content-Type", "")
        refused = self._refusal(ctx, reply.status, content_type, reply.content, reply.headers)
        if refused is not None:
            return reply.failed(refused)
        translator = CozeTranslator.for_call(ctx)
        for event in _events(SSESplitter(), reply.content + b"\n\n"):
            translator.feed(event)
            if translator.finished:
                break
        if (failure := self._failure(ctx, translator)) is not None:
            return reply.failed(failure)
        if not translator.finished:
            return reply.failed(stream_truncated())
        usage = self._usage(ctx, translator)
        text = "".join(translator.text)
        out = completion_body(
            id=completion_id(),
            model=ctx.request.upstream_model,
            message={"content": text},
            finish_reason="stop",
            usage=usage,
        )
        return json_result(out, usage, reply.upstream_ms)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            body = self._body(ctx)
        except Unsupported as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=client_mistake(str(exc))))
            return
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, body)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        translator = CozeTranslator.for_call(ctx)
        first_token_ms = 0
        error: relay_pb2.RelayError | None = None
        try:
            content_type = resp.headers.get("Content-Type", "")
            if resp.status >= 400 or "event-stream" not in content_type:
                content = await resp.read()
                refused = self._refusal(ctx, resp.status, content_type, content, resp.headers)
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
                return
            splitter = SSESplitter()
            async for raw in resp.content.iter_any():
                out = b"".join(translator.feed(event) for event in _events(splitter, raw))
                if out:
                    first_token_ms = first_token_ms or ms_since(started)
                    yield relay_pb2.RelayChunk(data=out)
                if translator.finished:
                    break
        except UPSTREAM_ERRORS as exc:
            error = error_from_exception(exc)
        finally:
            let_go(resp, reusable=False)
        if error is None:
            error = self._failure(ctx, translator)
        if error is None and not translator.finished:
            error = stream_truncated()
        usage = self._usage(ctx, translator)
        ending = stream_ending(
            ctx,
            usage,
            translator.usage_frame,
            error=error,
            first_token_ms=first_token_ms,
            upstream_ms=ms_since(started),
        )
        for chunk in ending:
            yield chunk
