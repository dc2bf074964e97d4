"""The RelayService gRPC implementation: pick the adapter for the channel type and run it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc

from unigate.logs import request_id_var
from unigate.v1 import relay_pb2, relay_pb2_grpc
from unigate_relay.channels import ChannelConfigs, ChannelNotFound
from unigate_relay.health_reporter import HealthReporter
from unigate_relay.providers.base import CallContext, Provider, relay_error

log = logging.getLogger(__name__)


class RelayService(relay_pb2_grpc.RelayServiceServicer):
    def __init__(
        self,
        providers: list[Provider],
        channels: ChannelConfigs,
        http: aiohttp.ClientSession,
        health: HealthReporter,
    ) -> None:
        self._by_type: dict[int, Provider] = {}
        for provider in providers:
            for t in provider.channel_types:
                self._by_type[t] = provider
        self._channels = channels
        self._http = http
        self._health = health

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
        if request.endpoint not in provider.endpoints:
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
        key = self._channels.next_key(channel.id)
        return provider, CallContext(request=request, channel=channel, api_key=key, http=self._http)

    async def Call(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.RelayResult:
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=prepared)
        provider, ctx = prepared
        result = await provider.call(ctx)
        self._health.observe(request.channel_id, result.error if result.HasField("error") else None)
        return result

    async def Stream(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[relay_pb2.RelayChunk]:
        prepared = await self._context(request)
        if isinstance(prepared, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=prepared))
            return
        provider, ctx = prepared
        async for chunk in provider.stream(ctx):
            if chunk.HasField("end"):
                end = chunk.end
                self._health.observe(
                    request.channel_id, end.error if end.HasField("error") else None
                )
            yield chunk
