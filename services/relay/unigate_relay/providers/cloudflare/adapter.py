"""Cloudflare Workers AI (channel type 37): the OpenAI protocol (the OpenAI family's adapter:
bodies and streams pass through, usage read from them) at Cloudflare's account-scoped URLs
(``wire``), with Cloudflare's error envelope mapped by ``errors``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import CallContext, channel_misconfigured
from unigate_relay.providers.cloudflare.errors import cloudflare_error
from unigate_relay.providers.cloudflare.wire import (
    MISSING_ACCOUNT,
    SPEC,
    account_id,
    is_gateway,
)
from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.openai.adapter import OpenAIProvider


class CloudflareProvider(OpenAIProvider):
    family: ClassVar[str] = "cloudflare"
    channel_types: ClassVar[tuple[int, ...]] = (SPEC.channel_type,)
    endpoints: ClassVar[frozenset[str]] = SPEC.endpoints

    def spec(self, channel_type: int) -> CompatibleSpec:
        return SPEC

    def upstream_error(
        self, status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
    ) -> relay_pb2.RelayError:
        return cloudflare_error(status, body, headers, secrets)

    @staticmethod
    def _unroutable(ctx: CallContext) -> relay_pb2.RelayError | None:
        if is_gateway(ctx.channel.base_url) or account_id(ctx.channel.config_json):
            return None
        return channel_misconfigured(MISSING_ACCOUNT)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        if (error := self._unroutable(ctx)) is not None:
            return relay_pb2.RelayResult(error=error)
        return await super().call(ctx)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        if (error := self._unroutable(ctx)) is not None:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        async for chunk in super().stream(ctx):
            yield chunk
