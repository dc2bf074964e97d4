"""Replicate language models (channel type 46) through the predictions API (see ``wire``).

Not streamed: the prediction is created with ``Prefer: wait`` and, if it is not finished when
Replicate answers, polled at ``urls.get``. Streamed: the prediction is created, its
``urls.stream`` read as SSE (``output`` events → OpenAI chunks) and, after ``done``, the
finished prediction fetched for its ``metrics``. The usage is Replicate's
``input_token_count`` / ``output_token_count``; counted and marked estimated only when the
prediction reports none.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Final

import orjson

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
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import (
    chunk_frame,
    completion_body,
    completion_id,
)
from unigate_relay.providers.replicate.errors import prediction_failed, replicate_error
from unigate_relay.providers.replicate.wire import (
    DEFAULT_BASE_URL,
    FINAL,
    Unsupported,
    prediction_body,
    predictions_path,
)
from unigate_relay.providers.upstream import (
    Answer,
    channel_headers,
    decoded,
    json_result,
    ms_since,
    open_upstream,
    read_answer,
)
from unigate_relay.sse import SSESplitter

# Between two looks at an unfinished prediction (Replicate's own clients poll about as often).
POLL_SECONDS: Final = 0.5
# How long a prediction may take before unigate gives up on it.
MAX_WAIT_SECONDS: Final = 600.0


def _sse_fields(event: bytes) -> tuple[str, str]:
    """(event name, data) of one SSE event; one space after ``data:`` is the separator, any
    other belongs to the text (a token often starts with one)."""
    name, data = "", []
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append((value[1:] if value.startswith(b" ") else value).decode(errors="replace"))
    return name, "\n".join(data)


def _usage(ctx: CallContext, prediction: dict[str, Any], text: str) -> common_pb2.Usage:
    metrics = prediction.get("metrics")
    if isinstance(metrics, dict):
        prompt, completion = metrics.get("input_token_count"), metrics.get("output_token_count")
        if isinstance(prompt, int) and isinstance(completion, int):
            return common_pb2.Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
    req = ctx.request
    return counted_usage(req.endpoint, req.body, req.upstream_model, text)


def _output(prediction: dict[str, Any]) -> str:
    output = prediction.get("output")
    if isinstance(output, list):
        return "".join(str(piece) for piece in output)
    return "" if output is None else str(output)


class ReplicateProvider(Provider):
    family: ClassVar[str] = "replicate"
    channel_types: ClassVar[tuple[int, ...]] = (46,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    @staticmethod
    def _auth(ctx: CallContext) -> dict[str, str]:
        return {"Authorization": f"Bearer {ctx.api_key}"}

    async def _create(self, ctx: CallContext, *, stream: bool) -> Answer | relay_pb2.RelayError:
        chat = decoded(ctx.request.body)
        try:
            if not isinstance(chat, dict):
                raise Unsupported("The request body must be a JSON object.")
            path = predictions_path(ctx.request.upstream_model)
            body = prediction_body(chat, stream=stream)
        except Unsupported as exc:
            return client_mistake(str(exc))
        url = (ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/") + path
        defaults = {"Content-Type": "application/json"}
        if not stream:
            defaults["Prefer"] = "wait"
        headers = channel_headers(ctx, defaults, self._auth(ctx))
        reply = await read_answer(open_upstream(ctx, url, data=orjson.dumps(body), headers=headers))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply.error
        if reply.status >= 400:
            return replicate_error(
                reply.status, reply.content, reply.headers, list(ctx.channel.keys)
            )
        return reply

    async def _get(self, ctx: CallContext, url: str) -> dict[str, Any] | relay_pb2.RelayError:
        try:
            opening = ctx.http.get(url, headers=self._auth(ctx), timeout=ctx.timeout())
            async with await asyncio.wait_for(opening, ctx.first_byte_seconds()) as resp:
                status, headers, content = resp.status, resp.headers, await resp.read()
        except UPSTREAM_ERRORS as exc:
            return error_from_exception(exc)
        if status >= 400:
            return replicate_error(status, content, headers, list(ctx.channel.keys))
        found = decoded(content)
        return found if isinstance(found, dict) else unreadable_answer(status)

    async def _finished(
        self, ctx: CallContext, prediction: dict[str, Any]
    ) -> dict[str, Any] | relay_pb2.RelayError:
        """The prediction once it is succeeded, failed or canceled (polled at ``urls.get``)."""
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while str(prediction.get("status")) not in FINAL:
            urls = prediction.get("urls")
            url = urls.get("get") if isinstance(urls, dict) else None
            if not isinstance(url, str) or time.monotonic() > deadline:
                return unreadable_answer(200)
            await asyncio.sleep(POLL_SECONDS)
            polled = await self._get(ctx, url)
            if isinstance(polled, relay_pb2.RelayError):
                return polled
            prediction = polled
        if prediction.get("status") != "succeeded":
            return prediction_failed(prediction, list(ctx.channel.keys))
        return prediction

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        started = time.perf_counter()
        created = await self._create(ctx, stream=False)
        if isinstance(created, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=created)
        prediction = created.json_object()
        if prediction is None:
            return created.unreadable()
        done = await self._finished(ctx, prediction)
        if isinstance(done, relay_pb2.RelayError):
            return relay_pb2.RelayResult(error=done, upstream_ms=ms_since(started))
        text = _output(done)
        usage = _usage(ctx, done, text)
        body = completion_body(
            id=completion_id(),
            model=ctx.request.upstream_model,
            message={"content": text},
            finish_reason="stop",
            usage=usage,
        )
        return json_result(body, usage, ms_since(started))

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        started = time.perf_counter()
        created = await self._create(ctx, stream=True)
        if isinstance(created, relay_pb2.RelayError):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=created))
            return
        prediction = created.json_object() or {}
        urls = prediction.get("urls")
        stream_url = urls.get("stream") if isinstance(urls, dict) else None
        if not isinstance(stream_url, str):
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=unreadable_answer(201)))
            return
        frame = functools.partial(
            chunk_frame,
            id=completion_id(),
            model=ctx.request.upstream_model,
            created=int(time.time()),
        )
        pieces: list[str] = []
        first_token_ms = 0
        finished = False
        error: relay_pb2.RelayError | None = None
        headers = {**self._auth(ctx), "Accept": "text/event-stream", "Cache-Control": "no-store"}
        try:
            opening = ctx.http.get(stream_url, headers=headers, timeout=ctx.timeout())
            async with await asyncio.wait_for(opening, ctx.first_byte_seconds()) as resp:
                if resp.status >= 400:
                    error = replicate_error(
                        resp.status, await resp.read(), resp.headers, list(ctx.channel.keys)
                    )
                else:
                    splitter = SSESplitter()
                    async for raw in resp.content.iter_any():
                        out = bytearray()
                        for event in splitter.feed(raw):
                            name, data = _sse_fields(event)
                            if name == "output" and data:
                                delta: dict[str, Any] = {"content": data}
                                if not pieces:
                                    delta["role"] = "assistant"
                                pieces.append(data)
                                out += frame(delta=delta)
                            elif name == "error":
                                failed = decoded(data.encode())
                                detail = failed.get("detail") if isinstance(failed, dict) else data
                                error = prediction_failed(
                                    {"status": "failed", "error": detail}, list(ctx.channel.keys)
                                )
                            elif name == "done":
                                finished = True
                        if out:
                            first_token_ms = first_token_ms or ms_since(started)
                            yield relay_pb2.RelayChunk(data=bytes(out))
                        if finished or error is not None:
                            break
        except UPSTREAM_ERRORS as exc:
            error = error_from_exception(exc)
        text = "".join(pieces)
        final: dict[str, Any] = {}
        if error is None and not finished:
            error = stream_truncated()
        if error is None:
            done = await self._finished(ctx, prediction)
            if isinstance(done, relay_pb2.RelayError):
                error = done
            else:
                final = done
        usage = _usage(ctx, final, text)
        ending = stream_ending(
            ctx,
            usage,
            lambda used: frame(usage=used),
            error=error,
            first_token_ms=first_token_ms,
            upstream_ms=ms_since(started),
            tail=frame(delta={}, finish_reason="stop"),
        )
        for chunk in ending:
            yield chunk
