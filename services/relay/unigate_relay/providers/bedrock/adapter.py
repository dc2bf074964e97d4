"""AWS Bedrock (channel type 33): Claude through InvokeModel, every other family through
Converse (``converse``).

OpenAI ``chat.completions`` requests become Anthropic Messages requests (the Anthropic
family's ``chat_to_messages``), reshaped for Bedrock (``wire.bedrock_body``), signed with
SigV4 (``signing``) and posted to ``/model/{modelId}/invoke`` or
``/invoke-with-response-stream`` of ``bedrock-runtime.{region}.amazonaws.com`` (the channel's
base URL replaces that host when set; the region is the channel config's ``region``). Answers
are Anthropic's message or its stream events inside AWS event-stream framing, translated with
the Anthropic family's ``message_to_chat`` / ``ChatStreamTranslator``.

A model that is not Anthropic's (Llama, Mistral, Nova, Cohere, …: ``wire.is_claude``) goes to
``/model/{modelId}/converse`` or ``/converse-stream`` instead, with a Converse body
(``converse_request``) and its answer translated by ``converse``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp
import orjson
from yarl import URL

from unigate.tokens import counted_usage, streamed_text
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.anthropic.errors import conversion_error, stream_error
from unigate_relay.providers.anthropic.request import chat_to_messages
from unigate_relay.providers.anthropic.response import message_to_chat
from unigate_relay.providers.anthropic.stream import (
    ChatStreamTranslator,
    parse_event,
    with_reported_prompt,
)
from unigate_relay.providers.anthropic.structured import content_tool
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    credentials_rejected,
    error_from_exception,
    stream_truncated,
    unreadable_answer,
)
from unigate_relay.providers.bedrock.converse import converse_result, converse_stream
from unigate_relay.providers.bedrock.converse_request import converse_body
from unigate_relay.providers.bedrock.errors import http_error, stream_exception
from unigate_relay.providers.bedrock.eventstream import (
    EventStreamReader,
    StreamDecodeError,
    StreamException,
)
from unigate_relay.providers.bedrock.signing import KeyFormatError, credentials, signed_headers
from unigate_relay.providers.bedrock.wire import (
    EVENT_STREAM_TYPE,
    bedrock_body,
    channel_config,
    claude_name,
    converse_url,
    invoke_url,
    is_claude,
    model_id,
    region_of,
)
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    let_go,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import event_data

CHAT = "chat.completions"


def _bad_key(exc: KeyFormatError) -> relay_pb2.RelayError:
    return credentials_rejected(0, str(exc))


class _Prepared:
    """One signed call: where, what and how, and whether it is a Converse call."""

    def __init__(self, ctx: CallContext, *, stream: bool) -> None:
        req = ctx.request
        try:
            chat = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            raise ConversionError("The request body is not valid JSON.") from None
        if not isinstance(chat, dict):
            raise ConversionError("The request body must be a JSON object.")
        config = channel_config(ctx.channel.config_json)
        region = region_of(config)
        self.model_id = model_id(req.upstream_model, config)
        self.converse = not is_claude(self.model_id)
        # The tool whose call is the answer's content (response_format: ``structured``).
        self.content_tool: str | None = None
        if self.converse:
            fmt = chat.get("response_format")
            if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
                # Converse has no JSON mode common to its families; never drop it silently.
                raise ConversionError(
                    "Structured output (`response_format`) is served on Bedrock for Claude "
                    "models only; ask without it, or use a Claude model."
                )
            self.body = orjson.dumps(converse_body(chat))
            self.url = converse_url(ctx.channel.base_url, region, self.model_id, stream=stream)
        else:
            messages = chat_to_messages(chat, claude_name(self.model_id))
            self.body = orjson.dumps(bedrock_body(messages))
            self.content_tool = content_tool(chat)
            self.url = invoke_url(ctx.channel.base_url, region, self.model_id, stream=stream)
        accept = EVENT_STREAM_TYPE if stream else "application/json"
        headers = channel_headers(ctx, {"Content-Type": "application/json", "Accept": accept})
        self.headers = signed_headers(
            credentials(ctx.api_key), region, self.url, self.body, headers
        )

    async def post(self, ctx: CallContext) -> aiohttp.ClientResponse:
        # encoded=True: the path goes byte for byte as signed (yarl would decode "%3A").
        return await open_upstream(
            ctx, URL(self.url, encoded=True), data=self.body, headers=self.headers
        )


def _prepare(ctx: CallContext, *, stream: bool) -> _Prepared | relay_pb2.RelayError:
    try:
        return _Prepared(ctx, stream=stream)
    except ConversionError as exc:
        return conversion_error(exc)
    except KeyFormatError as exc:
        return _bad_key(exc)


class BedrockProvider(Provider):
    family: ClassVar[str] = "bedrock"
    channel_types: ClassVar[tuple[int, ...]] = (33,)
    endpoints: ClassVar[frozenset[str]] = frozenset({CHAT})
    # As a forced tool (the Anthropic family's structured.py).
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        prepared = _prepare(ctx, stream=False)
        if isinstance(prepared, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=prepared)
        reply = await read_answer(prepared.post(ctx))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        if prepared.converse:
            return converse_result(ctx, reply)
        status, upstream_ms = reply.status, reply.upstream_ms
        if status >= 400:
            return reply.failed(
                http_error(status, reply.content, reply.headers, list(ctx.channel.keys))
            )
        answer = parse_event(reply.content)
        if answer is None:
            return reply.unreadable()
        message, finish, usage = message_to_chat(answer, prepared.content_tool)
        body = completion_body(
            id=completion_id(),
            model=ctx.request.upstream_model,
            message=message,
            finish_reason=finish,
            usage=usage,
        )
        return json_result(body, usage, upstream_ms, status=status)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        prepared = _prepare(ctx, stream=True)
        if isinstance(prepared, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=prepared))
            return
        state = ChatStreamTranslator(
            id=completion_id(),
            model=ctx.request.upstream_model,
            created=int(time.time()),
            include_usage=ctx.request.include_usage,
            content_tool=prepared.content_tool,
        )
        secrets = list(ctx.channel.keys)
        started = time.perf_counter()
        first_token_ms = 0
        sent: list[bytes] = []
        error: relay_pb2.RelayError | None = None
        try:
            resp = await prepared.post(ctx)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        if prepared.converse:
            async for chunk in converse_stream(ctx, resp, started):
                yield chunk
            return
        try:
            if resp.status >= 400:
                refused = http_error(resp.status, await resp.read(), resp.headers, secrets)
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
                return
            reader = EventStreamReader()
            async for raw in resp.content.iter_any():
                out = bytearray()
                for item in reader.feed(raw):
                    if isinstance(item, StreamException):
                        error = stream_exception(item.kind, item.message, secrets)
                        break
                    frames = state.feed(item)
                    if state.error is not None:
                        break
                    if not first_token_ms and state.has_content:
                        first_token_ms = int((time.perf_counter() - started) * 1000)
                    out += b"".join(frames)
                    sent.extend(frames)
                if (usage := state.report_usage()) is not None:
                    yield relay_pb2.RelayChunk(usage=usage)
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
                if error is not None or state.error is not None:
                    break
        except StreamDecodeError:
            error = unreadable_answer(resp.status)
        except UPSTREAM_ERRORS as exc:
            error = error_from_exception(exc)
        finally:
            let_go(resp, reusable=state.finished)
        if error is None and state.error is not None:
            error = stream_error(state.error, secrets)
        elif error is None and not state.finished:
            error = stream_truncated()
        yield relay_pb2.RelayChunk(
            end=relay_pb2.StreamEnd(
                usage=self._usage(ctx, state, sent),
                first_token_ms=first_token_ms,
                upstream_ms=int((time.perf_counter() - started) * 1000),
                error=error,
            )
        )

    @staticmethod
    def _usage(
        ctx: CallContext, state: ChatStreamTranslator, sent: list[bytes]
    ) -> common_pb2.Usage:
        """The stream's own usage, else counted from what was sent (marked estimated)."""
        if (final := state.final_usage()) is not None:
            return final
        usage = state.usage()
        req = ctx.request
        payloads = [d for f in sent if (d := event_data(f.strip())) is not None]
        counted = counted_usage(req.endpoint, req.body, req.upstream_model, streamed_text(payloads))
        if usage is not None:
            with_reported_prompt(counted, usage)
        return counted
