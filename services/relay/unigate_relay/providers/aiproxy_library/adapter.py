"""AI Proxy Library (channel type 21): a chat request becomes one question to the channel's
knowledge base (``wire``); the answer, with the documents it drew on listed after it, comes
back as a ``chat.completion`` or as chunks (``stream``). The ask API reports no usage, so
every call is counted (the client's request and the answer, with the model's encoding) and
marked estimated. A channel without a ``library_id`` is disabled without a call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.aiproxy_library.errors import error_of
from unigate_relay.providers.aiproxy_library.stream import LibraryTranslator
from unigate_relay.providers.aiproxy_library.wire import (
    ASK_PATH,
    DEFAULT_BASE_URL,
    MISSING_LIBRARY,
    Unsupported,
    ask_body,
    library_id,
    references,
)
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    channel_misconfigured,
    client_mistake,
    error_from_exception,
    unreadable_answer,
)
from unigate_relay.providers.native_stream import relay_sse_stream
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    json_result,
    open_upstream,
    read_answer,
    read_refusal,
)


def _body(ctx: CallContext, *, stream: bool) -> bytes | relay_pb2.RelayError:
    """The ask body, or why it cannot be sent (the channel's config, or the client's
    request)."""
    library = library_id(ctx.channel.config_json)
    if not library:
        return channel_misconfigured(MISSING_LIBRARY)
    chat = decoded(ctx.request.body)
    if not isinstance(chat, dict):
        return client_mistake("The request body must be a JSON object.")
    try:
        return orjson.dumps(ask_body(chat, ctx.request.upstream_model, library, stream=stream))
    except Unsupported as exc:
        return client_mistake(str(exc))


def _counted(ctx: CallContext, answer: str) -> common_pb2.Usage:
    req = ctx.request
    return counted_usage(req.endpoint, req.body, req.upstream_model, answer)


class AIProxyLibraryProvider(Provider):
    family: ClassVar[str] = "aiproxy_library"
    channel_types: ClassVar[tuple[int, ...]] = (21,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    async def _post(self, ctx: CallContext, body: bytes, *, stream: bool) -> aiohttp.ClientResponse:
        url = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/") + ASK_PATH
        accept = "text/event-stream" if stream else "application/json"
        headers = channel_headers(
            ctx,
            {"Content-Type": "application/json", "Accept": accept},
            {"Authorization": f"Bearer {ctx.api_key}"},
        )
        return await open_upstream(ctx, url, data=body, headers=headers)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        body = _body(ctx, stream=False)
        if isinstance(body, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=body)
        reply = await read_answer(self._post(ctx, body, stream=False))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        data = reply.json_object()
        refused = error_of(data, reply.status, list(ctx.channel.keys))
        if refused is not None:
            return reply.failed(refused)
        answer: Any = data.get("answer") if data is not None else None
        if not isinstance(answer, str):
            return reply.unreadable()
        usage = _counted(ctx, answer)
        out = completion_body(
            id=completion_id(),
            model=ctx.request.upstream_model,
            message={"content": answer + references(data.get("documents") if data else None)},
            finish_reason="stop",
            usage=usage,
        )
        return json_result(out, usage, reply.upstream_ms)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        body = _body(ctx, stream=True)
        if isinstance(body, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=body))
            return
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, body, stream=True)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        secrets = list(ctx.channel.keys)
        if resp.status >= 400 or "event-stream" not in resp.headers.get("Content-Type", ""):
            # A refusal answers with a JSON body instead of events.
            refusal = await read_refusal(resp)
            refused = (
                refusal
                if isinstance(refusal, relay_pb2.RelayError)
                else error_of(decoded(refusal.content), refusal.status, secrets)
            )
            if refused is None:
                refused = unreadable_answer(resp.status)
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
            return
        translator = LibraryTranslator.for_call(ctx)
        # A stream that fails before its first frame ends without usage (nothing to bill).
        async for chunk in relay_sse_stream(
            ctx,
            resp,
            started,
            translator,
            payload_error=lambda payload: error_of(payload, 200, secrets),
            usage_on_empty_failure=False,
        ):
            yield chunk
