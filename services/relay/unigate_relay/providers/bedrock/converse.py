"""The Converse half of the Bedrock channel: every model that is not Claude (Llama, Mistral,
Nova, Cohere Command R, Jamba, DeepSeek, …) through ``/model/{modelId}/converse`` and
``/converse-stream``, signed like InvokeModel (``signing``), answers translated by
``converse_reply``. The usage is Bedrock's (``usage`` of the answer, the ``metadata`` event of
a stream); only when Bedrock reports none is it counted, and marked estimated.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    error_from_exception,
    stream_truncated,
    unreadable_answer,
)
from unigate_relay.providers.bedrock.converse_reply import (
    ConverseStreamTranslator,
    answer_message,
    converse_usage,
    message_text,
)
from unigate_relay.providers.bedrock.errors import http_error, stream_exception
from unigate_relay.providers.bedrock.eventstream import (
    ConverseEventReader,
    StreamDecodeError,
    StreamException,
)
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import Answer, json_result, let_go, ms_since


def _counted(ctx: CallContext, text: str) -> common_pb2.Usage:
    req = ctx.request
    return counted_usage(req.endpoint, req.body, req.upstream_model, text)


def converse_result(ctx: CallContext, reply: Answer) -> relay_pb2.RelayResult:
    """The relay's result for a Converse call's HTTP answer."""
    if reply.status >= 400:
        return reply.failed(
            http_error(reply.status, reply.content, reply.headers, list(ctx.channel.keys))
        )
    answer = reply.json_object()
    if answer is None or not isinstance(answer.get("output"), dict):
        return reply.unreadable(converse_usage(answer.get("usage")) if answer else None)
    message, finish = answer_message(answer)
    usage = converse_usage(answer.get("usage")) or _counted(ctx, message_text(message))
    body = completion_body(
        id=completion_id(),
        model=ctx.request.upstream_model,
        message=message,
        finish_reason=finish,
        usage=usage,
    )
    return json_result(body, usage, reply.upstream_ms, status=reply.status)


async def converse_stream(
    ctx: CallContext, resp: aiohttp.ClientResponse, started: float
) -> AsyncIterator[relay_pb2.RelayChunk]:
    """Relay an accepted ConverseStream answer as OpenAI chunks, then one ``StreamEnd``."""
    secrets = list(ctx.channel.keys)
    translator = ConverseStreamTranslator.for_call(ctx)
    reader = ConverseEventReader()
    first_token_ms = 0
    error: relay_pb2.RelayError | None = None
    try:
        if resp.status >= 400:
            refused = http_error(resp.status, await resp.read(), resp.headers, secrets)
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=refused))
            return
        async for raw in resp.content.iter_any():
            out = bytearray()
            for item in reader.feed(raw):
                if isinstance(item, StreamException):
                    error = stream_exception(item.kind, item.message, secrets)
                    break
                frames = translator.feed(item)
                if frames and not first_token_ms:
                    first_token_ms = ms_since(started)
                out += frames
            if out:
                yield relay_pb2.RelayChunk(data=bytes(out))
            if error is not None or translator.finished:
                break
    except StreamDecodeError:
        error = unreadable_answer(resp.status)
    except UPSTREAM_ERRORS as exc:
        error = error_from_exception(exc)
    finally:
        let_go(resp, reusable=translator.finished)
    if error is None and not translator.finished:
        error = stream_truncated()
    usage = translator.usage or _counted(ctx, "".join(translator.text))
    ending = stream_ending(
        ctx,
        usage,
        translator.usage_frame,
        error=error,
        first_token_ms=first_token_ms,
        upstream_ms=int((time.perf_counter() - started) * 1000),
    )
    for chunk in ending:
        yield chunk
