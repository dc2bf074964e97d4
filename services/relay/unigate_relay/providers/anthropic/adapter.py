"""Anthropic's Messages API (channel type 14).

``chat.completions`` requests are converted to Messages requests and their answers and
streams back to OpenAI's shapes (``request``, ``response``, ``stream``). Requests to the
gateway's own ``/v1/messages`` (``messages``) and ``/v1/messages/count_tokens`` go natively:
the body passes through with only the upstream model set, and the stream is forwarded as
Anthropic sent it, peeking at ``message_start`` / ``message_delta`` for usage. Token counts
are not billed (their usage is zero).

Auth is Anthropic's: ``x-api-key`` and ``anthropic-version: 2023-06-01`` (Anthropic's
"Versions" page), posting to ``{base_url or https://api.anthropic.com}/v1/messages``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp
import orjson

from unigate.tokens import counted_usage, streamed_text
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.errors import (
    anthropic_error,
    conversion_error,
    stream_error,
)
from unigate_relay.providers.anthropic.request import chat_to_messages
from unigate_relay.providers.anthropic.response import message_to_chat, usage_from_anthropic
from unigate_relay.providers.anthropic.stream import (
    ChatStreamTranslator,
    StreamState,
    parse_event,
    with_reported_prompt,
)
from unigate_relay.providers.anthropic.structured import content_tool
from unigate_relay.providers.anthropic.wire import (
    API_VERSION,
    COUNT_TOKENS,
    COUNT_TOKENS_PATH,
    DEFAULT_BASE_URL,
    MESSAGES,
    MESSAGES_PATH,
    ConversionError,
)
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    drained,
    error_from_exception,
    stream_truncated,
)
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    let_go,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import SSESplitter, event_data

CHAT = "chat.completions"


class AnthropicProvider(Provider):
    family: ClassVar[str] = "anthropic"
    channel_types: ClassVar[tuple[int, ...]] = (14,)
    endpoints: ClassVar[frozenset[str]] = frozenset({CHAT, MESSAGES, COUNT_TOKENS})
    # As a forced tool (structured.py).
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})

    def _url(self, ctx: CallContext) -> str:
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        path = COUNT_TOKENS_PATH if ctx.request.endpoint == COUNT_TOKENS else MESSAGES_PATH
        return base + path

    def _headers(self, ctx: CallContext) -> dict[str, str]:
        return channel_headers(
            ctx,
            {"content-type": "application/json"},
            {"x-api-key": ctx.api_key, "anthropic-version": API_VERSION},
        )

    def _body(self, ctx: CallContext) -> tuple[bytes, str | None]:
        """(the Messages request to send, the tool whose call is the answer's content: see
        ``structured``); raises ConversionError for the client's mistakes."""
        req = ctx.request
        try:
            request = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            raise ConversionError("The request body is not valid JSON.") from None
        if not isinstance(request, dict):
            raise ConversionError("The request body must be a JSON object.")
        if req.endpoint == CHAT:
            messages = chat_to_messages(request, req.upstream_model)
            return orjson.dumps(messages), content_tool(request)
        if req.model == req.upstream_model:
            # Native: the client's bytes go as they are.
            return req.body, None
        request["model"] = req.upstream_model
        return orjson.dumps(request), None

    async def _post(self, ctx: CallContext, body: bytes) -> aiohttp.ClientResponse:
        return await open_upstream(ctx, self._url(ctx), data=body, headers=self._headers(ctx))

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            body, answer_tool = self._body(ctx)
        except ConversionError as exc:
            return relay_pb2.RelayResult(error=conversion_error(exc))
        reply = await read_answer(self._post(ctx, body))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        status, content, upstream_ms = reply.status, reply.content, reply.upstream_ms
        if status >= 400:
            return reply.failed(
                anthropic_error(status, content, reply.headers, list(ctx.channel.keys))
            )
        answer = parse_event(content)
        if answer is None:
            return reply.unreadable()
        endpoint = ctx.request.endpoint
        if endpoint == COUNT_TOKENS:
            # Counting is free: the ledger row carries no tokens.
            usage = common_pb2.Usage()
        elif endpoint == MESSAGES:
            usage = usage_from_anthropic(answer.get("usage"))
        else:
            message, finish, usage = message_to_chat(answer, answer_tool)
            content = completion_body(
                id=completion_id(),
                model=str(answer.get("model") or ctx.request.upstream_model),
                message=message,
                finish_reason=finish,
                usage=usage,
            )
        return json_result(content, usage, upstream_ms, status=status)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            body, answer_tool = self._body(ctx)
        except ConversionError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=conversion_error(exc)))
            return
        native = ctx.request.endpoint == MESSAGES
        state: StreamState = (
            StreamState()
            if native
            else ChatStreamTranslator(
                id=completion_id(),
                model=ctx.request.upstream_model,
                created=int(time.time()),
                include_usage=ctx.request.include_usage,
                content_tool=answer_tool,
            )
        )
        started = time.perf_counter()
        first_token_ms = 0
        sent: list[bytes] = []
        reusable = False
        try:
            resp = await self._post(ctx, body)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        secrets = list(ctx.channel.keys)
        try:
            if resp.status >= 400:
                refused = anthropic_error(resp.status, await resp.read(), resp.headers, secrets)
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
                return
            splitter = SSESplitter()
            async for raw in resp.content.iter_any():
                out = bytearray()
                for frame in splitter.feed(raw):
                    data = event_data(frame)
                    event = parse_event(data) if data is not None else None
                    if event is None:
                        continue
                    if isinstance(state, ChatStreamTranslator):
                        frames = state.feed(event)
                    else:
                        state.observe(event)
                        frames = [] if state.error is not None else [frame + b"\n\n"]
                    if state.error is not None:
                        break
                    if not first_token_ms and state.has_content:
                        first_token_ms = int((time.perf_counter() - started) * 1000)
                    for f in frames:
                        out += f
                        sent.append(f)
                if (usage := state.report_usage()) is not None:
                    yield relay_pb2.RelayChunk(usage=usage)
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
                if state.error is not None:
                    break
                if state.finished:
                    # After message_stop nothing follows: end now, even if the response
                    # stays open (the client's terminal frame waits for this end).
                    reusable = await drained(resp)
                    break
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=error_from_exception(exc),
                    usage=self._usage(ctx, state, sent),
                    first_token_ms=first_token_ms,
                )
            )
            return
        finally:
            let_go(resp, reusable=reusable)
        error: relay_pb2.RelayError | None = None
        if state.error is not None:
            error = stream_error(state.error, secrets)
        elif not state.finished:
            error = stream_truncated()
        yield relay_pb2.RelayChunk(
            end=relay_pb2.StreamEnd(
                usage=self._usage(ctx, state, sent),
                first_token_ms=first_token_ms,
                upstream_ms=int((time.perf_counter() - started) * 1000),
                error=error,
            )
        )

    def _usage(self, ctx: CallContext, state: StreamState, sent: list[bytes]) -> common_pb2.Usage:
        """The stream's own usage, else counted from what was sent (marked estimated)."""
        if (final := state.final_usage()) is not None:
            return final
        usage = state.usage()
        req = ctx.request
        payloads: list[bytes] = []
        for frame in sent:
            data = event_data(frame.strip())
            if data is not None:
                payloads.append(data)
        counted = counted_usage(req.endpoint, req.body, req.upstream_model, streamed_text(payloads))
        if usage is not None:
            with_reported_prompt(counted, usage)
        return counted
