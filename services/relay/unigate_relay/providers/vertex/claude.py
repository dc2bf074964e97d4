"""Claude on Vertex AI: Anthropic's Messages API at Vertex's ``publishers/anthropic`` models.

Reference: Anthropic's "Claude on Vertex AI" and Google's "Use Claude models" (Vertex AI
docs): ``POST .../publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` for
a stream, Anthropic's SSE), the Messages body with ``anthropic_version: "vertex-2023-10-16"``
and without ``model`` (the path names it; ``stream`` stays), an OAuth access token as for
Gemini, and Vertex's ``name@date`` model ids (``claude-3-5-sonnet-v2@20241022``; One API
and LiteLLM map the same names). Everything else — conversions, stream translation, errors —
is the Anthropic family's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

import aiohttp
import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.anthropic.adapter import AnthropicProvider
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.gemini.errors import CredentialError
from unigate_relay.providers.upstream import open_upstream

if TYPE_CHECKING:
    from unigate_relay.providers.vertex.adapter import VertexProvider

VERTEX_VERSION: Final = "vertex-2023-10-16"

#: Claude's own names → Vertex's model ids.
MODEL_IDS: Final[dict[str, str]] = {
    "claude-3-haiku-20240307": "claude-3-haiku@20240307",
    "claude-3-opus-20240229": "claude-3-opus@20240229",
    "claude-3-5-sonnet-20240620": "claude-3-5-sonnet@20240620",
    "claude-3-5-sonnet-20241022": "claude-3-5-sonnet-v2@20241022",
    "claude-3-5-haiku-20241022": "claude-3-5-haiku@20241022",
    "claude-3-7-sonnet-20250219": "claude-3-7-sonnet@20250219",
    "claude-sonnet-4-20250514": "claude-sonnet-4@20250514",
    "claude-opus-4-20250514": "claude-opus-4@20250514",
}


def is_claude(model: str) -> bool:
    return model.startswith("claude-")


def vertex_model_id(model: str) -> str:
    """Vertex's id for a Claude name; an id already in Vertex's form goes as it is."""
    return MODEL_IDS.get(model, model)


class VertexClaude(AnthropicProvider):
    """The Anthropic transport, pointed at Vertex with the Vertex channel's token."""

    def __init__(self, vertex: VertexProvider) -> None:
        self.vertex = vertex

    def _body(self, ctx: CallContext) -> tuple[bytes, str | None]:
        body, answer_tool = super()._body(ctx)
        request = orjson.loads(body)
        if not isinstance(request, dict):
            raise ConversionError("The request body must be a JSON object.")
        request.pop("model", None)
        return orjson.dumps({"anthropic_version": VERTEX_VERSION, **request}), answer_tool

    async def _post(self, ctx: CallContext, body: bytes) -> aiohttp.ClientResponse:
        method = "streamRawPredict" if ctx.request.stream else "rawPredict"
        url = self.vertex.model_url(
            ctx, method, publisher="anthropic", model=vertex_model_id(ctx.request.upstream_model)
        )
        # The token was fetched (and cached) by call/stream just before.
        headers = {"content-type": "application/json", **await self.vertex.credentials(ctx)}
        return await open_upstream(ctx, url, data=body, headers=headers)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            await self.vertex.credentials(ctx)
        except CredentialError as exc:
            return relay_pb2.RelayResult(error=exc.error)
        result = await super().call(ctx)
        if result.error.upstream_status == 401:
            # Vertex refused the token, not Claude the key: as for Gemini, drop the token and
            # let another channel serve this request without disabling this one.
            result.error.CopyFrom(self.vertex.upstream_error(ctx, 401, b"", None))
        return result

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            await self.vertex.credentials(ctx)
        except CredentialError as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=exc.error))
            return
        async for chunk in super().stream(ctx):
            if chunk.HasField("end") and chunk.end.error.upstream_status == 401:
                chunk.end.error.CopyFrom(self.vertex.upstream_error(ctx, 401, b"", None))
            yield chunk
