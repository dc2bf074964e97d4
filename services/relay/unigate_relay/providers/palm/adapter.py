"""Google PaLM (channel type 11): a chat request as one ``generateMessage`` call (see
``wire``), answered as a ``chat.completion`` with one choice per candidate. PaLM does not
stream: a stream is the whole answer as one chunk per candidate, the finish, then the usage
chunk (when asked) and ``[DONE]`` (One API sends it the same way). PaLM reports no token
usage: the prompt and the candidates' text are counted with the model's encoding, marked
estimated. A prompt PaLM withheld (no candidates, ``filters`` saying why) ends as
``content_filter`` with no text.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

import orjson

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import CallContext, Provider, client_mistake
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import (
    chunk_frame,
    completion_body_choices,
    completion_id,
)
from unigate_relay.providers.palm.errors import palm_error
from unigate_relay.providers.palm.wire import (
    DEFAULT_BASE_URL,
    Unsupported,
    candidate_texts,
    filtered,
    message_body,
    message_path,
)
from unigate_relay.providers.upstream import (
    channel_headers,
    decoded,
    json_result,
    open_upstream,
    read_answer,
)


@dataclass(slots=True)
class _Answer:
    """PaLM's answer, read: the candidates' texts (one empty one when withheld), the finish
    reason and the usage billed."""

    texts: list[str]
    finish_reason: str
    usage: common_pb2.Usage
    upstream_ms: int


class PaLMProvider(Provider):
    family: ClassVar[str] = "palm"
    channel_types: ClassVar[tuple[int, ...]] = (11,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    async def _generate(self, ctx: CallContext) -> _Answer | relay_pb2.RelayError:
        chat = decoded(ctx.request.body)
        try:
            if not isinstance(chat, dict):
                raise Unsupported("The request body must be a JSON object.")
            body = message_body(chat)
        except Unsupported as exc:
            return client_mistake(str(exc))
        base = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/")
        url = base + message_path(ctx.request.upstream_model)
        headers = channel_headers(
            ctx, {"Content-Type": "application/json"}, {"x-goog-api-key": ctx.api_key}
        )
        reply = await read_answer(open_upstream(ctx, url, data=orjson.dumps(body), headers=headers))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply.error
        if reply.status >= 400:
            return palm_error(reply.status, reply.content, reply.headers, list(ctx.channel.keys))
        answer = reply.json_object()
        if answer is None:
            return reply.unreadable().error
        texts = candidate_texts(answer)
        if texts is None and not filtered(answer):
            return reply.unreadable().error
        req = ctx.request
        usage = counted_usage(req.endpoint, req.body, req.upstream_model, "".join(texts or []))
        if texts is None:
            return _Answer([""], "content_filter", usage, reply.upstream_ms)
        return _Answer(texts, "stop", usage, reply.upstream_ms)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        done = await self._generate(ctx)
        if isinstance(done, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=done)
        body = completion_body_choices(
            id=completion_id(),
            model=ctx.request.upstream_model,
            choices=[({"content": text}, done.finish_reason) for text in done.texts],
            usage=done.usage,
        )
        return json_result(body, done.usage, done.upstream_ms)

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        done = await self._generate(ctx)
        if isinstance(done, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=done))
            return
        frame = functools.partial(
            chunk_frame,
            id=completion_id(),
            model=ctx.request.upstream_model,
            created=int(time.time()),
        )
        # PaLM does not stream: each candidate's whole text is one chunk, then its finish.
        answer = b"".join(
            frame(delta={"role": "assistant", "content": text}, index=i)
            + frame(delta={}, finish_reason=done.finish_reason, index=i)
            for i, text in enumerate(done.texts)
        )
        ending = stream_ending(
            ctx,
            done.usage,
            lambda used: frame(usage=used),
            error=None,
            first_token_ms=int((time.perf_counter() - started) * 1000),
            upstream_ms=done.upstream_ms,
            tail=answer,
        )
        for chunk in ending:
            yield chunk
