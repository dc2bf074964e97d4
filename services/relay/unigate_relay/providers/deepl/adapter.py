"""DeepL (channel type 38): a chat request's last message translated by ``/v2/translate``
(see ``wire``); the answer is the translation, as a ``chat.completion`` or as one streamed
chunk (DeepL does not stream). DeepL bills characters: the usage is ``character`` units, the
``billed_characters`` DeepL reports (also as prompt tokens, One API's convention, for a model
priced per token); counted (and marked estimated) only if DeepL reports none.

Errors (DeepL "Errors"): ``{"message"}`` with 403 (the key refused: the channel's), 456 (the
quota of the key used up), 429 (too many requests), 400 / 413 (the client's), 5xx.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    CallContext,
    Provider,
    client_mistake,
    credentials_rejected,
    error_from_upstream,
    quota_exhausted,
    scrub,
)
from unigate_relay.providers.deepl.wire import TRANSLATE_PATH, Unsupported, base_url, translate_body
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import (
    chunk_frame,
    completion_body,
    completion_id,
)
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    json_result,
    open_upstream,
    read_answer,
)

CHARACTER = "character"


def deepl_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    data: Any = decoded(body)
    message = scrub(str(data.get("message") or "") if isinstance(data, dict) else "", secrets)
    if status in (401, 403):
        return credentials_rejected(
            status, f"DeepL refused this channel's key: {message or status}"
        )
    if status == 456:
        return quota_exhausted(status)
    return error_from_upstream(
        status, orjson.dumps({"error": {"message": message}}), headers, secrets
    )


def _usage(answer: dict[str, Any], text: str) -> common_pb2.Usage:
    translations = answer.get("translations")
    items = translations if isinstance(translations, list) else []
    billed = [t.get("billed_characters") for t in items if isinstance(t, dict)]
    counts = [b for b in billed if isinstance(b, int)]
    if billed and len(counts) == len(billed):
        count = sum(counts)
        estimated = False
    else:
        count, estimated = len(text), True
    return common_pb2.Usage(
        prompt_tokens=count,
        total_tokens=count,
        unit=CHARACTER,
        quantity=count,
        estimated=estimated,
    )


def _translation(answer: dict[str, Any]) -> str | None:
    translations = answer.get("translations")
    if not isinstance(translations, list) or not translations:
        return None
    first = translations[0]
    return str(first.get("text") or "") if isinstance(first, dict) else None


class DeepLProvider(Provider):
    family: ClassVar[str] = "deepl"
    channel_types: ClassVar[tuple[int, ...]] = (38,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    async def _translate(
        self, ctx: CallContext
    ) -> tuple[str, common_pb2.Usage, int] | relay_pb2.RelayError:
        """(the translation, its usage, upstream ms) or the error."""
        chat = decoded(ctx.request.body)
        try:
            if not isinstance(chat, dict):
                raise Unsupported("The request body must be a JSON object.")
            body, text = translate_body(chat, ctx.request.upstream_model)
        except Unsupported as exc:
            return client_mistake(str(exc))
        url = base_url(ctx.channel.base_url, ctx.api_key) + TRANSLATE_PATH
        headers = channel_headers(
            ctx,
            {"Content-Type": "application/json"},
            {"Authorization": f"DeepL-Auth-Key {ctx.api_key}"},
        )
        reply = await read_answer(open_upstream(ctx, url, data=orjson.dumps(body), headers=headers))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply.error
        if reply.status >= 400:
            return deepl_error(reply.status, reply.content, reply.headers, list(ctx.channel.keys))
        answer = reply.json_object()
        translated = _translation(answer) if answer is not None else None
        if answer is None or translated is None:
            return reply.unreadable().error
        return translated, _usage(answer, text), reply.upstream_ms

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        done = await self._translate(ctx)
        if isinstance(done, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=done)
        text, usage, upstream_ms = done
        body = completion_body(
            id=completion_id(),
            model=ctx.request.upstream_model,
            message={"content": text},
            finish_reason="stop",
            usage=usage,
        )
        return json_result(body, usage, upstream_ms)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        done = await self._translate(ctx)
        if isinstance(done, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=done))
            return
        text, usage, upstream_ms = done
        frame = functools.partial(
            chunk_frame,
            id=completion_id(),
            model=ctx.request.upstream_model,
            created=int(time.time()),
        )
        # DeepL does not stream: the whole translation is one chunk, then the ending.
        answer = frame(delta={"role": "assistant", "content": text})
        ending = stream_ending(
            ctx,
            usage,
            lambda used: frame(usage=used),
            error=None,
            first_token_ms=int((time.perf_counter() - started) * 1000),
            upstream_ms=upstream_ms,
            tail=answer + frame(delta={}, finish_reason="stop"),
        )
        for chunk in ending:
            yield chunk
