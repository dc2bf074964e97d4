"""Google Vertex AI (channel type 42): Gemini on Vertex with a service account.

URLs (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference):
``https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/
publishers/google/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``; the
``global`` location is served at ``aiplatform.googleapis.com``), authenticated with
``Authorization: Bearer <OAuth access token>`` minted from the channel key, a service
account key file's JSON (``credentials``). The channel config names ``region`` (default
``us-central1``) and ``project_id`` (default: the service account's project; One API's
``vertex_ai_project_id`` is read too). The request and answer bodies are Gemini's, so the
Gemini family's conversion is reused whole. Chat with a ``claude-*`` model goes to Vertex's
Anthropic publisher instead (``claude``). Embeddings use ``:predict`` (text embedding
models), whose answer counts each input's tokens
(https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from unigate import gemini_endpoints as gemini
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    CallContext,
    error_from_exception,
    relay_error,
    unreadable_answer,
)
from unigate_relay.providers.gemini.adapter import GeminiProvider, channel_config
from unigate_relay.providers.gemini.errors import CredentialError
from unigate_relay.providers.gemini.request import embedding_inputs
from unigate_relay.providers.gemini.response import embeddings_body
from unigate_relay.providers.upstream import json_result
from unigate_relay.providers.vertex.claude import VertexClaude, is_claude
from unigate_relay.providers.vertex.credentials import (
    CredentialsInvalid,
    ServiceAccount,
    TokenCache,
    TokenRefused,
    parse_service_account,
)

DEFAULT_REGION = "us-central1"


def _auth_failed(message: str, *, fatal: bool, status: int = 0) -> CredentialError:
    return CredentialError(
        relay_error(
            502,
            f"The upstream provider rejected this channel's credentials: {message}"
            if fatal
            else f"Could not obtain an access token for this channel: {message}",
            code="upstream_auth_failed" if fatal else "upstream_token_unavailable",
            retryable=True,
            upstream_status=status,
            fatal=fatal,
        )
    )


class VertexProvider(GeminiProvider):
    family: ClassVar[str] = "vertex"
    channel_types: ClassVar[tuple[int, ...]] = (42,)
    # Gemini-native generation and counting pass through; Vertex has no embedContent for
    # every model, so the native embedding routes are translated onto its `predict`.
    endpoints: ClassVar[frozenset[str]] = frozenset(
        {"chat.completions", "embeddings", gemini.GENERATE, gemini.COUNT_TOKENS}
    )

    def __init__(self) -> None:
        self.tokens = TokenCache()
        self._accounts: dict[str, ServiceAccount] = {}
        self.claude = VertexClaude(self)

    def serves(self, endpoint: str, channel_type: int, upstream_model: str) -> bool:
        # Claude on Vertex speaks Anthropic's protocol: the Gemini-native routes reach it
        # through the translation layer and its chat completions.
        if gemini.is_gemini(endpoint) and is_claude(upstream_model):
            return False
        return super().serves(endpoint, channel_type, upstream_model)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        if ctx.request.endpoint == "chat.completions" and is_claude(ctx.request.upstream_model):
            return await self.claude.call(ctx)
        return await super().call(ctx)

    def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        if ctx.request.endpoint == "chat.completions" and is_claude(ctx.request.upstream_model):
            return self.claude.stream(ctx)
        return super().stream(ctx)

    def _key_text(self, ctx: CallContext) -> str:
        # Channel keys are split into lines; a pretty-printed key file arrives in pieces.
        if ctx.api_key.lstrip().startswith("{") and ctx.api_key.rstrip().endswith("}"):
            return ctx.api_key
        return "\n".join(ctx.channel.keys)

    def account(self, ctx: CallContext) -> ServiceAccount:
        raw = self._key_text(ctx)
        slot = hashlib.sha256(raw.encode()).hexdigest()
        found = self._accounts.get(slot)
        if found is None:
            try:
                found = parse_service_account(raw)
            except CredentialsInvalid as exc:
                raise _auth_failed(str(exc), fatal=True) from None
            self._accounts[slot] = found
        return found

    def model_url(
        self, ctx: CallContext, method: str, *, publisher: str = "google", model: str = ""
    ) -> str:
        config = channel_config(ctx)
        region = str(config.get("region") or DEFAULT_REGION)
        project = str(
            config.get("project_id")
            or config.get("vertex_ai_project_id")
            or self.account(ctx).project_id
        )
        if not project:
            raise _auth_failed("no project_id in the channel config or service account", fatal=True)
        host = (
            "aiplatform.googleapis.com"
            if region == "global"
            else f"{region}-aiplatform.googleapis.com"
        )
        base = (ctx.channel.base_url or f"https://{host}").rstrip("/")
        path = f"/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/"
        return f"{base}{path}{model or ctx.request.upstream_model}:{method}"

    async def credentials(self, ctx: CallContext) -> dict[str, str]:
        account = self.account(ctx)
        try:
            token = await self.tokens.token(account, ctx.http, ctx.first_byte_seconds())
        except TokenRefused as exc:
            raise _auth_failed(str(exc), fatal=exc.fatal, status=exc.status) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CredentialError(error_from_exception(exc)) from None
        return {"Authorization": f"Bearer {token}"}

    def upstream_error(
        self,
        ctx: CallContext,
        status: int,
        body: bytes | Any,
        headers: CIMultiDictProxy[str] | None,
    ) -> relay_pb2.RelayError:
        if status == 401:
            # A token Vertex no longer accepts (revoked, clock skew): fetch a new one next time,
            # and let another channel serve this request without condemning this one.
            self.tokens.forget(self.account(ctx))
            return relay_error(
                502,
                "The upstream provider refused this channel's access token.",
                code="upstream_token_refused",
                retryable=True,
                upstream_status=status,
            )
        return super().upstream_error(ctx, status, body, headers)

    async def embeddings(self, ctx: CallContext, body: dict[str, Any]) -> relay_pb2.RelayResult:
        parameters: dict[str, Any] = {}
        if isinstance(body.get("dimensions"), int) and body["dimensions"] > 0:
            parameters["outputDimensionality"] = body["dimensions"]
        payload: dict[str, Any] = {"instances": [{"content": t} for t in embedding_inputs(body)]}
        if parameters:
            payload["parameters"] = parameters
        outcome = await self._exchange(ctx, "predict", orjson.dumps(payload))
        if isinstance(outcome, relay_pb2.RelayResult):
            return outcome
        data, upstream_ms = outcome
        predictions = data.get("predictions") if isinstance(data, dict) else None
        vectors: list[list[float]] = []
        tokens = 0
        for item in predictions if isinstance(predictions, list) else []:
            embedding = item.get("embeddings") if isinstance(item, dict) else None
            values = embedding.get("values") if isinstance(embedding, dict) else None
            if not isinstance(values, list):
                break
            vectors.append([float(v) for v in values])
            statistics = embedding.get("statistics") if isinstance(embedding, dict) else None
            if isinstance(statistics, dict):
                tokens += int(statistics.get("token_count") or 0)
        if not vectors or not isinstance(predictions, list) or len(vectors) != len(predictions):
            return relay_pb2.RelayResult(error=unreadable_answer(200), upstream_ms=upstream_ms)
        req = ctx.request
        usage = common_pb2.Usage(prompt_tokens=tokens, total_tokens=tokens)
        encoding = str(body.get("encoding_format") or "float")
        return json_result(
            embeddings_body(vectors, req.model or req.upstream_model, encoding, usage),
            usage,
            upstream_ms,
        )
