"""The gateway's Gemini-native routes on Gemini and Vertex channels: the client's
``generateContent`` / ``streamGenerateContent`` / ``countTokens`` / ``embedContent`` /
``batchEmbedContents`` body passed through to the same method of the channel's upstream
model, and its answer passed back as Google sent it.

Only what names the model changes: the URL (the channel's upstream model, after its model
mapping) and, where Google's body repeats it (``batchEmbedContents``' per-request ``model``,
``countTokens``' ``generateContentRequest.model``), those fields. Usage is Google's own
``usageMetadata`` (``generateContent``, each stream chunk carrying the running total); the
embedding methods report none and are counted; counting tokens is never billed.

Streams are asked for with ``alt=sse`` and each event is re-framed as ``data: …\\n\\n`` (Google
separates them with CRLF), so the relay and the gateway find the finishing chunk the same
way for every family (:mod:`unigate.terminal_frames`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from unigate import gemini_endpoints as gemini
from unigate.terminal_frames import terminal_at
from unigate.tokens import counted_usage, sse_payloads, streamed_text
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    client_mistake,
    error_from_exception,
    stream_truncated,
    unreadable_answer,
)
from unigate_relay.providers.gemini.response import usage_from
from unigate_relay.providers.upstream import let_go, ms_since
from unigate_relay.sse import SSESplitter, event_data

if TYPE_CHECKING:
    from unigate_relay.providers.gemini.adapter import GeminiProvider


def upstream_body(ctx: CallContext, *, vertex: bool = False) -> bytes | relay_pb2.RelayError:
    """The client's body for the upstream model: the same bytes unless a field names the
    model and the channel maps it to another. Vertex AI's ``countTokens`` takes the counted
    fields themselves, so a Gemini API ``generateContentRequest`` is unwrapped for it."""
    req = ctx.request
    unwrap = (
        vertex and req.endpoint == gemini.COUNT_TOKENS and b"generateContentRequest" in req.body
    )
    if not unwrap and (
        req.endpoint not in (gemini.BATCH_EMBED, gemini.COUNT_TOKENS)
        or req.model == req.upstream_model
    ):
        return req.body
    try:
        body = orjson.loads(req.body)
    except orjson.JSONDecodeError:
        return client_mistake("Invalid JSON payload received.", code="invalid_argument")
    if not isinstance(body, dict):
        return req.body
    name = f"models/{req.upstream_model}"
    if req.endpoint == gemini.BATCH_EMBED:
        for item in body.get("requests") or []:
            if isinstance(item, dict):
                item["model"] = name
    elif isinstance(body.get("generateContentRequest"), dict):
        inner = body["generateContentRequest"]
        if unwrap:
            counted = ("contents", "systemInstruction", "tools")
            body = {k: inner[k] for k in counted if k in inner}
        else:
            inner["model"] = name
    return orjson.dumps(body)


def _usage(ctx: CallContext, answer: Any) -> common_pb2.Usage:
    endpoint = ctx.request.endpoint
    if endpoint == gemini.COUNT_TOKENS:
        return common_pb2.Usage()  # counting is never billed
    if endpoint == gemini.GENERATE:
        found = usage_from(answer.get("usageMetadata") if isinstance(answer, dict) else None)
        if found is not None:
            return found
    req = ctx.request
    # The embedding methods report no tokens (and a generateContent answer may lack them).
    return counted_usage(req.endpoint, req.body, req.upstream_model, "")


async def native_call(provider: GeminiProvider, ctx: CallContext) -> relay_pb2.RelayResult:
    body = upstream_body(ctx, vertex=provider.family == "vertex")
    if isinstance(body, relay_pb2.RelayError):
        return relay_pb2.RelayResult(error=body)
    method = gemini.UPSTREAM_METHOD[ctx.request.endpoint]
    outcome = await provider._exchange(ctx, method, body)
    if isinstance(outcome, relay_pb2.RelayResult):
        return outcome
    data, upstream_ms = outcome
    if not isinstance(data, dict):
        return relay_pb2.RelayResult(error=unreadable_answer(200), upstream_ms=upstream_ms)
    return relay_pb2.RelayResult(
        http_status=200,
        content_type="application/json",
        body=orjson.dumps(data),
        usage=_usage(ctx, data),
        upstream_ms=upstream_ms,
    )


async def native_stream(
    provider: GeminiProvider, ctx: CallContext
) -> AsyncIterator[relay_pb2.RelayChunk]:
    started = time.perf_counter()
    body = upstream_body(ctx)
    if isinstance(body, relay_pb2.RelayError):
        yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=body))
        return
    resp = await provider.open_stream(ctx, body)
    if isinstance(resp, relay_pb2.RelayError):
        yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=resp))
        return
    usage: common_pb2.Usage | None = None
    first_token_ms = 0
    finished = False
    failure: relay_pb2.RelayError | None = None
    text: list[bytes] = []
    try:
        if resp.status >= 400:
            content = await resp.read()
            error = provider.upstream_error(ctx, resp.status, content, resp.headers)
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        splitter = SSESplitter()
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
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                    status = int(parsed["error"].get("code") or 500)
                    failure = provider.upstream_error(ctx, status, parsed, None)
                    break
                frame = b"data: " + orjson.dumps(parsed) + b"\n\n"
                meta = parsed.get("usageMetadata") if isinstance(parsed, dict) else None
                # Gemini's usage is cumulative: the last chunk's is the answer's.
                usage = usage_from(meta) or usage
                finished = finished or terminal_at(gemini.GENERATE, frame) >= 0
                if not first_token_ms:
                    first_token_ms = ms_since(started)
                text.append(frame)
                out += frame
            if out:
                yield relay_pb2.RelayChunk(data=bytes(out))
            if failure is not None:
                break
    except UPSTREAM_ERRORS as exc:
        failure = error_from_exception(exc)
    finally:
        let_go(resp, reusable=finished and failure is None)
    upstream_ms = ms_since(started)
    if failure is None and not finished:
        failure = stream_truncated()
    if usage is None:
        req = ctx.request
        usage = counted_usage(
            req.endpoint,
            req.body,
            req.upstream_model,
            streamed_text(sse_payloads(b"".join(text))),
        )
    yield relay_pb2.RelayChunk(
        end=relay_pb2.StreamEnd(
            usage=usage, first_token_ms=first_token_ms, upstream_ms=upstream_ms, error=failure
        )
    )
