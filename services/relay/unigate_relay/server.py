"""The RelayService gRPC implementation: pick the adapter for the channel type and run it."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import aiohttp
import grpc

from unigate import telemetry
from unigate.channel_types import speaks_websocket
from unigate.grpc_mux import (
    RELAY_CALL,
    RELAY_CALL_WIRE,
    RELAY_STREAM,
    STREAM_WIRE,
    MuxServer,
    MuxStreamServer,
)
from unigate.keys import key_fingerprint
from unigate.logs import request_id_var
from unigate.terminal_frames import terminal_at
from unigate.urls import base_url_problem
from unigate.v1 import common_pb2, relay_pb2, relay_pb2_grpc
from unigate_relay import metrics
from unigate_relay.channel_proxy import proxy_call
from unigate_relay.channels import ChannelConfigs, ChannelNotFound
from unigate_relay.health_reporter import HealthReporter, is_key_failure
from unigate_relay.output_bound import bounded_body, bounded_stream
from unigate_relay.providers.anthropic.batches import batch_call
from unigate_relay.providers.base import CallContext, Provider, relay_error
from unigate_relay.realtime import REALTIME_CHANNEL_TYPES, REALTIME_ENDPOINT, run_session
from unigate_relay.system_prompt import with_system_prompt
from unigate_relay.translate import ResponsesOverChat, serving
from unigate_relay.translate.legacy_functions import answering_legacy
from unigate_relay.translate.response_formats import unsupported_format
from unigate_relay.translate.responses_history import native_body
from unigate_relay.translate.responses_provider import RESPONSES
from unigate_relay.usage_record import UsageRecorder

log = logging.getLogger(__name__)


class RelayService(relay_pb2_grpc.RelayServiceServicer):
    def __init__(
        self,
        providers: list[Provider],
        channels: ChannelConfigs,
        http: aiohttp.ClientSession,
        health: HealthReporter,
        usage: UsageRecorder,
    ) -> None:
        self._by_type: dict[int, Provider] = {}
        for provider in providers:
            for t in provider.channel_types:
                self._by_type[t] = provider
        self._channels = channels
        self._http = http
        self._health = health
        self._usage = usage
        self._many: MuxServer[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxServer(
            self.call,
            lambda exc: relay_pb2.RelayResult(
                error=relay_error(
                    503,
                    "The relay failed while handling this call.",
                    type="unigate_error",
                    code="relay_failed",
                    retryable=True,
                )
            ),
            relay_pb2.RelayResult,
            RELAY_CALL_WIRE,
            method=RELAY_CALL,
        )
        self._streams: MuxStreamServer[
            relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
        ] = MuxStreamServer(
            self.stream, relay_pb2.RelayStreamDown, STREAM_WIRE, method=RELAY_STREAM
        )

    async def _context(
        self, request: relay_pb2.RelayRequest
    ) -> tuple[Provider, CallContext] | relay_pb2.RelayError:
        request_id_var.set(request.request_id)
        provider = self._by_type.get(request.channel_type)
        if provider is None:
            return relay_error(
                503,
                f"No relay here serves channel type {request.channel_type}.",
                type="unigate_error",
                code="relay_misrouted",
                retryable=True,
            )
        # A family without the Messages, Responses or Gemini routes serves them translated.
        # Realtime sessions are not a provider call (unigate_relay.realtime checks the
        # channel type).
        if request.endpoint != REALTIME_ENDPOINT:
            served = serving(
                provider, request.endpoint, request.channel_type, request.upstream_model
            )
            if served is None:
                return relay_error(
                    400,
                    f"This model's provider does not support `{request.endpoint}`.",
                    type="invalid_request_error",
                    code="unsupported_endpoint",
                )
            provider = served
        if (refused := unsupported_format(provider, request)) is not None:
            return refused
        provider = answering_legacy(provider, request)
        try:
            channel = await self._channels.get(request.channel_id, request.config_version)
        except ChannelNotFound:
            return relay_error(
                503,
                "The channel no longer exists.",
                type="unigate_error",
                code="channel_gone",
                retryable=True,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "could not fetch channel %d: %s %s", request.channel_id, exc.code(), exc.details()
            )
            return relay_error(
                503,
                "Channel configuration is unavailable.",
                type="unigate_error",
                code="channel_config_unavailable",
                retryable=True,
            )
        if problem := base_url_problem(channel.base_url, websocket=speaks_websocket(channel.type)):
            # Stored before base URLs were checked: this channel fails, another may serve.
            return relay_error(
                502,
                f"The channel is misconfigured: {problem}.",
                type="unigate_error",
                code="channel_misconfigured",
                retryable=True,
            )
        body = request.body
        native = not isinstance(provider, ResponsesOverChat)
        if request.responses_history and request.endpoint == RESPONSES and native:
            # A provider with its own Responses API: the id where it keeps the state.
            body = native_body(request)
        if channel.system_prompt:
            body = with_system_prompt(request.endpoint, body, channel.system_prompt)
        if request.max_output_tokens > 0:
            body = bounded_body(
                request.endpoint,
                body,
                request.max_output_tokens,
                provider.chat_output_field(channel.type),
            )
        if body is not request.body:
            changed = relay_pb2.RelayRequest()
            changed.CopyFrom(request)
            changed.body = body
            request = changed
        key, _ = self._channels.next_key(channel.id, self._health.key_cooling(channel.id))
        return provider, CallContext(request=request, channel=channel, api_key=key, http=self._http)

    def _key_name(self, ctx: CallContext) -> str:
        """The fingerprint of the key a call used, when its channel has several (a failure
        of one of them is that key's, not the channel's); else empty."""
        if self._channels.key_count(ctx.channel.id) > 1:
            return key_fingerprint(ctx.api_key)
        return ""

    async def _open_stream(
        self, provider: Provider, ctx: CallContext
    ) -> tuple[CallContext, AsyncIterator[relay_pb2.RelayChunk]]:
        """The stream of a call, and the context it was opened with. In a multi-key channel,
        a stream refused at once for its key (nothing sent to the client yet) is opened
        again with the next usable key, as a non-streaming call is."""
        for _ in range(max(self._channels.key_count(ctx.channel.id), 1)):
            opened = time.perf_counter()
            stream = bounded_stream(ctx.request, provider.stream(ctx))
            first = await anext(stream, None)
            key_name = self._key_name(ctx)
            refused = (
                first is not None
                and first.HasField("end")
                and first.end.HasField("error")
                and bool(key_name)
                and is_key_failure(first.end.error)
            )
            if not refused:
                return ctx, _prepend(first, stream)
            assert first is not None
            key, _ = self._channels.next_key(
                ctx.channel.id, _passing_over(key_name, self._health.key_cooling(ctx.channel.id))
            )
            if key == ctx.api_key:
                return ctx, _prepend(first, stream)  # no other key: the failure is the answer
            error = first.end.error
            metrics.upstream_done(
                provider.family, ctx.request.channel_id, error, time.perf_counter() - opened
            )
            self._health.observe(ctx.request.channel_id, error, 0.0, key_name)
            # The refused stream has ended (its end was its only chunk); let it go.
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
            ctx = dataclasses.replace(ctx, api_key=key)
        return ctx, bounded_stream(ctx.request, provider.stream(ctx))

    async def Call(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.RelayResult:
        return await self.call(request)

    async def CallMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayRequests],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayResults]:
        async for results in self._many.serve(request_iterator):
            yield results

    async def StreamMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayStreamUps],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayStreamDowns]:
        async for message in self._streams.serve(request_iterator):
            yield message

    async def ProxyCall(
        self, request: relay_pb2.ProxyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.ProxyResult:
        request_id_var.set(request.request_id)
        if request.channel_type not in self._by_type:
            return relay_pb2.ProxyResult(
                error=relay_error(
                    503,
                    f"No relay here serves channel type {request.channel_type}.",
                    type="unigate_error",
                    code="relay_misrouted",
                )
            )
        return await proxy_call(request, self._channels, self._http)

    async def MessageBatch(
        self, request: relay_pb2.BatchUpstreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.BatchUpstreamResult:
        request_id_var.set(request.request_id)
        provider = self._by_type.get(request.channel_type)
        if provider is None or provider.family != "anthropic":
            return relay_pb2.BatchUpstreamResult(
                error=relay_error(
                    503,
                    f"No relay here serves Message Batches on channel type {request.channel_type}.",
                    type="unigate_error",
                    code="relay_misrouted",
                )
            )
        return await batch_call(request, self._channels, self._http)

    def drain(self) -> None:
        """Shutting down: gateways are asked to send their next calls elsewhere."""
        self._many.drain()
        self._streams.drain()

    async def call(self, request: relay_pb2.RelayRequest) -> relay_pb2.RelayResult:
        """One non-streaming call (Call, or one of CallMany's)."""
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=prepared)
        provider, ctx = prepared
        span = _upstream_span(request) if telemetry.recording() else None
        # A multi-key channel: a key the provider refuses or rate-limits is taken out of
        # rotation at once (observe) and the call tried again with the next key, so one bad
        # key costs the client nothing; no tokens were spent on the refused attempt.
        for _ in range(max(self._channels.key_count(ctx.channel.id), 1)):
            metrics.IN_FLIGHT.inc()
            started = time.perf_counter()
            try:
                with telemetry.current(span):
                    result = await provider.call(ctx)
            finally:
                metrics.IN_FLIGHT.dec()
            error = result.error if result.HasField("error") else None
            metrics.upstream_done(
                provider.family, request.channel_id, error, time.perf_counter() - started
            )
            key_name = self._key_name(ctx)
            self._health.observe(request.channel_id, error, result.upstream_ms, key_name)
            if not key_name or error is None or not is_key_failure(error):
                break
            key, _ = self._channels.next_key(
                ctx.channel.id, self._health.key_cooling(ctx.channel.id)
            )
            if key == ctx.api_key:
                break  # every key is cooling: the channel's failure is the answer
            ctx = dataclasses.replace(ctx, api_key=key)
        if span is not None:
            _end_upstream_span(span, result.usage, error, b"" if error else result.body)
        self._usage.ended(
            request,
            result.usage,
            status=error.error.http_status if error else result.http_status or 200,
            upstream_ms=result.upstream_ms,
        )
        return result

    async def Stream(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[relay_pb2.RelayChunk]:
        async for chunk in self.stream(request):
            yield chunk

    async def stream(self, request: relay_pb2.RelayRequest) -> AsyncIterator[relay_pb2.RelayChunk]:
        """One streaming call (Stream, or one of StreamMany's). Closed early (the gateway's
        client left), it stops the provider's call and records the call as broken off."""
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=prepared))
            return
        provider, ctx = prepared
        span = _upstream_span(request) if telemetry.recording() else None
        first = True
        ended = False
        first_data: float | None = None
        held = TerminalHold(request.endpoint)
        metrics.IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            ctx, chunks = await self._open_stream(provider, ctx)
            async for chunk in chunks:
                if chunk.HasField("end"):
                    end = chunk.end
                    held.close(end)
                    error = end.error if end.HasField("error") else None
                    ended = True
                    metrics.upstream_done(
                        provider.family,
                        request.channel_id,
                        error,
                        time.perf_counter() - started,
                        first_data,
                    )
                    self._health.observe(
                        request.channel_id, error, end.first_token_ms, self._key_name(ctx)
                    )
                    # Recorded before the end goes out: the client may have every byte already.
                    self._usage.ended(
                        request,
                        end.usage,
                        status=error.error.http_status if error else 200,
                        first_token_ms=end.first_token_ms,
                        upstream_ms=end.upstream_ms,
                    )
                    if span is not None:
                        _end_upstream_span(span, end.usage, error)
                        span = None
                elif chunk.HasField("data"):
                    if first:
                        first_data = time.perf_counter() - started
                        if span is not None:
                            telemetry.note_response(span, chunk.data)
                        first = False
                    if not (chunk := held.split(chunk)).data:
                        continue
                yield chunk
        finally:
            metrics.IN_FLIGHT.dec()
            if not ended:
                metrics.upstream_cancelled(provider.family, request.channel_id)
                self._usage.broken_off(request)
            if span is not None:
                # The gateway cancelled (its client left) before the provider finished.
                telemetry.end_genai_span(span, usage=None, outcome="cancelled")

    async def Realtime(
        self,
        request_iterator: AsyncIterator[relay_pb2.RealtimeUp],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RealtimeDown]:
        """A Realtime API session: the first message opens it on a channel, then events
        pass both ways (``unigate_relay.realtime``)."""
        upstream = aiter(request_iterator)
        try:
            first = await anext(upstream)
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "open":
            yield relay_pb2.RealtimeDown(
                error=relay_error(
                    400, "A realtime session starts with its open message.", code="bad_open"
                )
            )
            return
        request = first.open
        if request.channel_type not in REALTIME_CHANNEL_TYPES:
            yield relay_pb2.RealtimeDown(
                error=relay_error(
                    400,
                    "This model's provider does not offer the Realtime API.",
                    type="invalid_request_error",
                    code="unsupported_endpoint",
                )
            )
            return
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            yield relay_pb2.RealtimeDown(error=prepared)
            return
        _, ctx = prepared
        metrics.IN_FLIGHT.inc()
        try:
            async for down in run_session(ctx, upstream, self._usage):
                if down.HasField("error"):
                    self._health.observe(request.channel_id, down.error, 0)
                yield down
        finally:
            metrics.IN_FLIGHT.dec()


def _passing_over(failed: str, cooling: Callable[[str], bool]) -> Callable[[str], bool]:
    """Keys to skip: the one that just failed, and those cooling down."""
    return lambda fp: fp == failed or cooling(fp)


async def _prepend(
    first: relay_pb2.RelayChunk | None, rest: AsyncIterator[relay_pb2.RelayChunk]
) -> AsyncIterator[relay_pb2.RelayChunk]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


class TerminalHold:
    """Holds back the frame that ends a stream for its client (``[DONE]``, ``message_stop``,
    the Responses API's final event) and everything after it, and puts them in the
    ``StreamEnd``: the gateway then has the usage before the client can see the end, so a
    client that closes at that frame (every SDK does) is never billed an estimate. Frames
    before it pass at once, so the time to first token is unchanged. One place for every
    adapter, present and future."""

    __slots__ = ("_endpoint", "_tail")

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._tail = bytearray()

    def split(self, chunk: relay_pb2.RelayChunk) -> relay_pb2.RelayChunk:
        """The part of a data chunk to send now (its data empty when all of it is held)."""
        if self._tail:
            self._tail += chunk.data
            return relay_pb2.RelayChunk(data=b"")
        at = terminal_at(self._endpoint, chunk.data)
        if at < 0:
            return chunk
        self._tail += chunk.data[at:]
        return relay_pb2.RelayChunk(data=chunk.data[:at])

    def close(self, end: relay_pb2.StreamEnd) -> None:
        """Put the held frames into the stream's ``end``. A stream whose terminal frame came
        is complete for its client, so a failure after it (the provider's connection reset
        while the relay read it to its end) is logged, not reported: the gateway must send
        nothing after that frame."""
        if not self._tail:
            return
        end.tail = bytes(self._tail)
        if end.HasField("error"):
            log.warning("stream failed after its last frame (ignored): %s", end.error.error.message)
            end.ClearField("error")


def _upstream_span(request: relay_pb2.RelayRequest) -> telemetry.Span:
    return telemetry.start_upstream(
        endpoint=request.endpoint,
        type_id=request.channel_type,
        model=request.upstream_model or request.model,
        channel_id=request.channel_id,
        request_body=request.body,
    )


def _end_upstream_span(
    span: telemetry.Span,
    usage: common_pb2.Usage,
    error: relay_pb2.RelayError | None,
    body: bytes = b"",
) -> None:
    telemetry.end_genai_span(
        span,
        usage=usage,
        error_code=(error.error.code or error.error.type or "error") if error else "",
        retryable=error.retryable if error else None,
        response=body,
    )
