"""The Gemini API (channel type 24): OpenAI chat and embeddings over ``generateContent``,
``streamGenerateContent?alt=sse`` and ``batchEmbedContents`` with the ``x-goog-api-key``
header (https://ai.google.dev/api). Vertex AI (``providers.vertex``) reuses all of it and
overrides the URLs, the credentials and its embeddings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from unigate import gemini_endpoints as gemini
from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    client_mistake,
    error_from_exception,
    stream_truncated,
    unreadable_answer,
)
from unigate_relay.providers.gemini.errors import CredentialError, google_error
from unigate_relay.providers.gemini.native import native_call, native_stream
from unigate_relay.providers.gemini.request import (
    InvalidRequest,
    batch_embed_request,
    chat_request,
    embedding_inputs,
)
from unigate_relay.providers.gemini.response import batch_embeddings, completion, embeddings_body
from unigate_relay.providers.gemini.stream import StreamTranslator
from unigate_relay.providers.openai_shapes import completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    let_go,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import SSESplitter, event_data

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"


def channel_config(ctx: CallContext) -> dict[str, Any]:
    if not ctx.channel.config_json:
        return {}
    try:
        config = orjson.loads(ctx.channel.config_json)
    except orjson.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


class GeminiProvider(Provider):
    family: ClassVar[str] = "gemini"
    channel_types: ClassVar[tuple[int, ...]] = (24,)
    # The Gemini-native routes pass through (native.py).
    endpoints: ClassVar[frozenset[str]] = frozenset(
        {"chat.completions", "embeddings", *gemini.ENDPOINTS}
    )
    # responseMimeType and responseSchema (schema.py).
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})

    # ---- what Vertex AI overrides -------------------------------------------------------

    def model_url(self, ctx: CallContext, method: str) -> str:
        """The URL of ``models/{model}:{method}`` for this channel (method may carry a query)."""
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        version = str(channel_config(ctx).get("api_version") or DEFAULT_API_VERSION)
        return f"{base}/{version}/models/{ctx.request.upstream_model}:{method}"

    async def credentials(self, ctx: CallContext) -> dict[str, str]:
        """Headers that authenticate the call (may raise :class:`CredentialError`)."""
        return {"x-goog-api-key": ctx.api_key}

    def upstream_error(
        self,
        ctx: CallContext,
        status: int,
        body: bytes | Any,
        headers: CIMultiDictProxy[str] | None,
    ) -> relay_pb2.RelayError:
        return google_error(status, body, headers, list(ctx.channel.keys))

    async def embeddings(self, ctx: CallContext, body: dict[str, Any]) -> relay_pb2.RelayResult:
        """``batchEmbedContents``: Gemini reports no token counts for it, so they are counted."""
        payload = orjson.dumps(batch_embed_request(body, ctx.request.upstream_model))
        outcome = await self._exchange(ctx, "batchEmbedContents", payload)
        if isinstance(outcome, relay_pb2.RelayResult):
            return outcome
        data, upstream_ms = outcome
        vectors = batch_embeddings(data)
        if vectors is None:
            return relay_pb2.RelayResult(error=unreadable_answer(200), upstream_ms=upstream_ms)
        req = ctx.request
        usage = counted_usage(req.endpoint, req.body, req.upstream_model, "")
        encoding = str(body.get("encoding_format") or "float")
        return json_result(
            embeddings_body(vectors, req.model or req.upstream_model, encoding, usage),
            usage,
            upstream_ms,
        )

    # ---- shared machinery ---------------------------------------------------------------

    async def _headers(self, ctx: CallContext) -> dict[str, str]:
        return channel_headers(
            ctx, {"Content-Type": "application/json"}, await self.credentials(ctx)
        )

    async def _post(self, ctx: CallContext, method: str, payload: bytes) -> aiohttp.ClientResponse:
        url = self.model_url(ctx, method)
        headers = await self._headers(ctx)
        return await open_upstream(ctx, url, data=payload, headers=headers)

    async def _exchange(
        self, ctx: CallContext, method: str, payload: bytes
    ) -> tuple[Any, int] | relay_pb2.RelayResult:
        """POST and read a JSON answer: (parsed answer, upstream ms), or the failed result."""
        try:
            answer = await read_answer(self._post(ctx, method, payload))
        except CredentialError as exc:
            return relay_pb2.RelayResult(error=exc.error)
        if isinstance(answer, relay_pb2.RelayResult):
            return answer
        if answer.status >= 400:
            return answer.failed(
                self.upstream_error(ctx, answer.status, answer.content, answer.headers)
            )
        data = answer.json()
        if data is None:
            return answer.unreadable()
        return data, answer.upstream_ms

    async def open_stream(
        self, ctx: CallContext, payload: bytes
    ) -> aiohttp.ClientResponse | relay_pb2.RelayError:
        """POST a ``streamGenerateContent`` (SSE): the upstream's response, or the error that
        ends the stream before anything was read (no credential, no connection)."""
        try:
            return await self._post(ctx, "streamGenerateContent?alt=sse", payload)
        except CredentialError as exc:
            return exc.error
        except UPSTREAM_ERRORS as exc:
            return error_from_exception(exc)

    def _request_body(self, ctx: CallContext) -> dict[str, Any]:
        try:
            body = orjson.loads(ctx.request.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def _counted(self, ctx: CallContext, text: str) -> common_pb2.Usage:
        req = ctx.request
        return counted_usage(req.endpoint, req.body, req.upstream_model, text)

    def _answer_model(self, ctx: CallContext) -> str:
        return ctx.request.upstream_model or ctx.request.model

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        if gemini.is_gemini(ctx.request.endpoint):
            return await native_call(self, ctx)
        try:
            body = self._request_body(ctx)
            if ctx.request.endpoint == "embeddings":
                embedding_inputs(body)
                return await self.embeddings(ctx, body)
            payload = orjson.dumps(chat_request(body))
        except InvalidRequest as exc:
            return relay_pb2.RelayResult(error=_invalid(exc))
        outcome = await self._exchange(ctx, "generateContent", payload)
        if isinstance(outcome, relay_pb2.RelayResult):
            return outcome
        data, upstream_ms = outcome
        if not isinstance(data, dict):
            return relay_pb2.RelayResult(error=unreadable_answer(200), upstream_ms=upstream_ms)
        answer, usage = completion(
            data, self._answer_model(ctx), completion_id(), lambda t: self._counted(ctx, t)
        )
        return json_result(answer, usage, upstream_ms)

    def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        if gemini.is_gemini(ctx.request.endpoint):
            return native_stream(self, ctx)
        return self._chat_stream(ctx)

    async def _chat_stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        try:
            payload = orjson.dumps(chat_request(self._request_body(ctx)))
        except InvalidRequest as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=_invalid(exc)))
            return
        translator = StreamTranslator(
            id=completion_id(),
            model=self._answer_model(ctx),
            include_usage=ctx.request.include_usage,
        )
        resp = await self.open_stream(ctx, payload)
        if isinstance(resp, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=resp))
            return
        first_token_ms = 0
        failure: relay_pb2.RelayError | None = None
        try:
            if resp.status >= 400:
                content = await resp.read()
                error = self.upstream_error(ctx, resp.status, content, resp.headers)
                yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
                return
            splitter = SSESplitter()
            reported = False
            async for raw in resp.content.iter_any():
                out = bytearray()
                for event in splitter.feed(raw):
                    data = event_data(event)
                    if data is None:
                        continue
                    try:
                        parsed = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        failure = unreadable_answer(200)
                        break
                    for frame in translator.feed(parsed):
                        out += frame
                    if translator.error is not None:
                        failure = self.upstream_error(
                            ctx, int(translator.error.get("code") or 500), parsed, None
                        )
                        break
                if translator.produced and not first_token_ms:
                    first_token_ms = int((time.perf_counter() - started) * 1000)
                if translator.finished and translator.usage and failure is None and not reported:
                    # Gemini's usage is cumulative: the finishing chunk's is the final one.
                    reported = True
                    yield relay_pb2.RelayChunk(usage=translator.usage)
                if out:
                    yield relay_pb2.RelayChunk(data=bytes(out))
                if failure is not None:
                    break
        except UPSTREAM_ERRORS as exc:
            failure = error_from_exception(exc)
        finally:
            let_go(resp, reusable=translator.finished and failure is None)
        upstream_ms = int((time.perf_counter() - started) * 1000)
        usage = translator.usage or self._counted(ctx, "".join(translator.text))
        if failure is None and not translator.finished:
            failure = stream_truncated()
        if failure is not None:
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(
                    error=failure,
                    usage=usage,
                    first_token_ms=first_token_ms,
                    upstream_ms=upstream_ms,
                )
            )
            return
        yield relay_pb2.RelayChunk(data=b"".join(translator.closing_frames(usage)))
        yield relay_pb2.RelayChunk(
            end=relay_pb2.StreamEnd(
                usage=usage, first_token_ms=first_token_ms, upstream_ms=upstream_ms
            )
        )


def _invalid(exc: InvalidRequest) -> relay_pb2.RelayError:
    return client_mistake(exc.message, code="invalid_request", param=exc.param)
