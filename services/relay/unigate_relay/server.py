"""The RelayService gRPC implementation: pick the adapter for the channel type and run it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc

from unigate import telemetry
from unigate.channel_types import speaks_websocket
from unigate.grpc_mux import RELAY_CALL, MuxServer
from unigate.logs import request_id_var
from unigate.terminal_frames import terminal_at
from unigate.urls import base_url_problem
from unigate.v1 import common_pb2, relay_pb2, relay_pb2_grpc
from unigate_relay import metrics
from unigate_relay.channels import ChannelConfigs, ChannelNotFound
from unigate_relay.health_reporter import HealthReporter
from unigate_relay.output_bound import bounded_body, bounded_stream
from unigate_relay.providers.base import CallContext, Provider, relay_error
from unigate_relay.system_prompt import with_system_prompt
from unigate_relay.translate import serving
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
            method=RELAY_CALL,
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
        # A family without the Messages API serves it through its chat completions.
        if (provider := serving(provider, request.endpoint)) is None:
            return relay_error(
                400,
                f"This model's provider does not support `{request.endpoint}`.",
                type="invalid_request_error",
                code="unsupported_endpoint",
            )
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
        key = self._channels.next_key(channel.id)
        return provider, CallContext(request=request, channel=channel, api_key=key, http=self._http)

    async def Call(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.RelayResult:
        return await self.call(request)

    async def CallMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayResult]:
        async for result in self._many.serve(request_iterator):
            yield result

    def drain(self) -> None:
        """Shutting down: gateways are asked to send their next calls elsewhere."""
        self._many.drain()

    async def call(self, request: relay_pb2.RelayRequest) -> relay_pb2.RelayResult:
        """One non-streaming call (Call, or one of CallMany's)."""
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=prepared)
        provider, ctx = prepared
        span = _upstream_span(request) if telemetry.recording() else None
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
        if span is not None:
            _end_upstream_span(span, result.usage, error, b"" if error else result.body)
        self._health.observe(request.channel_id, error, result.upstream_ms)
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
            async for chunk in bounded_stream(ctx.request, provider.stream(ctx)):
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
                    self._health.observe(request.channel_id, error, end.first_token_ms)
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
