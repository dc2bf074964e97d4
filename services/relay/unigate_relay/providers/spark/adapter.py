"""iFlytek Spark (channel type 18) over its WebSocket API.

Each call opens ``wss://spark-api.xf-yun.com/<path>`` with a freshly signed URL
(``auth.py``), sends one request frame and reads answer frames until ``status`` 2; a
non-streamed call is assembled from the same frames. The channel's ``timeout_ms`` bounds the
handshake, the first answer frame and every gap between frames.

References: https://www.xfyun.cn/doc/spark/Web.html (protocol, versions, error codes),
https://www.xfyun.cn/doc/spark/general_url_authentication.html (signature); One API and New
API ``relay/adaptor/xunfei`` (model names, key format, system prompt for older versions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    CallContext,
    Provider,
    client_mistake,
    credentials_rejected,
    error_from_exception,
    relay_error,
    stream_truncated,
)
from unigate_relay.providers.native_stream import stream_ending
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.spark.auth import KeyFormatError, parse_key, signed_url
from unigate_relay.providers.spark.convert import Answer, Unsupported, request_frame, spark_error
from unigate_relay.providers.spark.errors import handshake_error, map_code
from unigate_relay.providers.spark.models import DEFAULT_BASE_URL, UnknownVersion, route_for
from unigate_relay.providers.upstream import json_result

# An answer frame is a few KB; this bounds a misbehaving peer, not a real answer.
_MAX_FRAME = 4 * 1024 * 1024


class _Failed(Exception):
    """A call that cannot be made or ended in an error the client must see."""

    def __init__(self, error: relay_pb2.RelayError) -> None:
        super().__init__(error.error.message)
        self.error = error


def _bad_frame() -> relay_pb2.RelayError:
    return relay_error(
        502,
        "The upstream provider sent a frame that could not be read.",
        code="bad_upstream_response",
        retryable=True,
    )


def _ws_base(base_url: str) -> str:
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://")
    return base


class SparkProvider(Provider):
    family: ClassVar[str] = "spark"
    channel_types: ClassVar[tuple[int, ...]] = (18,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    @staticmethod
    def _timeouts(ctx: CallContext) -> tuple[float | None, float | None]:
        """(handshake, first frame and between frames) in seconds."""
        if ctx.channel.timeout_ms > 0:
            seconds = ctx.channel.timeout_ms / 1000
            return seconds, seconds
        return ctx.http.timeout.sock_connect, ctx.http.timeout.sock_read

    def _prepare(self, ctx: CallContext) -> tuple[str, dict[str, Any]]:
        """The signed URL and the request frame; raises _Failed for a request Spark cannot
        take or a channel that is misconfigured."""
        if ctx.request.endpoint != "chat.completions":
            raise _Failed(client_mistake(f"Spark does not support `{ctx.request.endpoint}`."))
        try:
            key = parse_key(ctx.api_key)
        except KeyFormatError as exc:
            # The operator's mistake, fixed only by editing the channel.
            raise _Failed(credentials_rejected(0, str(exc))) from exc
        config: dict[str, Any] = {}
        if ctx.channel.config_json and ctx.channel.config_json != "{}":
            loaded = orjson.loads(ctx.channel.config_json)
            config = loaded if isinstance(loaded, dict) else {}
        try:
            route = route_for(ctx.request.upstream_model, config)
            frame = request_frame(
                orjson.loads(ctx.request.body), app_id=key.app_id, domain=route.domain
            )
        except UnknownVersion as exc:
            raise _Failed(
                relay_error(404, str(exc), type="invalid_request_error", code="model_not_found")
            ) from exc
        except Unsupported as exc:
            raise _Failed(client_mistake(str(exc))) from exc
        endpoint = _ws_base(ctx.channel.base_url) + route.path
        return signed_url(endpoint, key.api_key, key.api_secret), frame

    async def _frames(
        self, ctx: CallContext, url: str, frame: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The answer frames, parsed, up to and including the last (or an error frame).
        Raises _Failed for every way the exchange can fail."""
        opening, waiting = self._timeouts(ctx)
        secrets = list(ctx.channel.keys)
        try:
            # No proxy from the environment (the relay's aiohttp session ignores it too), no
            # compression (frames are small), no keepalive pings (calls are short).
            async with connect(
                url,
                open_timeout=opening,
                close_timeout=2,
                proxy=None,
                compression=None,
                ping_interval=None,
                max_size=_MAX_FRAME,
                user_agent_header=None,
            ) as ws:
                await ws.send(orjson.dumps(frame).decode())
                while True:
                    raw = await asyncio.wait_for(ws.recv(), waiting)
                    try:
                        parsed = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise _Failed(_bad_frame()) from None
                    if not isinstance(parsed, dict):
                        raise _Failed(_bad_frame())
                    failure = spark_error(parsed)
                    if failure is not None:
                        code, message = failure
                        raise _Failed(map_code(code, message, secrets) if code else _bad_frame())
                    yield parsed
                    header = parsed.get("header") or {}
                    choices = (parsed.get("payload") or {}).get("choices") or {}
                    if header.get("status") == 2 or choices.get("status") == 2:
                        return
        except InvalidStatus as exc:
            raise _Failed(
                handshake_error(exc.response.status_code, bytes(exc.response.body))
            ) from exc
        except ConnectionClosed as exc:
            raise _Failed(stream_truncated()) from exc
        except (WebSocketException, OSError, TimeoutError) as exc:
            raise _Failed(error_from_exception(exc)) from exc

    def _estimate(self, ctx: CallContext, answer: Answer) -> common_pb2.Usage:
        req = ctx.request
        return counted_usage(req.endpoint, req.body, req.upstream_model, answer.counted_text())

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        try:
            url, frame = self._prepare(ctx)
        except _Failed as failed:
            return relay_pb2.RelayResult(error=failed.error)
        started = time.perf_counter()
        answer = Answer(id=completion_id(), model=ctx.request.upstream_model, created=0)
        try:
            async with aclosing(self._frames(ctx, url, frame)) as frames:
                async for parsed in frames:
                    answer.feed(parsed)
        except _Failed as failed:
            return relay_pb2.RelayResult(
                error=failed.error, upstream_ms=int((time.perf_counter() - started) * 1000)
            )
        upstream_ms = int((time.perf_counter() - started) * 1000)
        usage = answer.usage or self._estimate(ctx, answer)
        return json_result(
            completion_body(
                id=answer.id,
                model=ctx.request.upstream_model,
                message=answer.message(),
                finish_reason=answer.finish_reason,
                usage=usage,
            ),
            usage,
            upstream_ms,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            url, frame = self._prepare(ctx)
        except _Failed as failed:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=failed.error))
            return
        started = time.perf_counter()
        answer = Answer(
            id=completion_id(), model=ctx.request.upstream_model, created=int(time.time())
        )
        first_token_ms = 0
        error: relay_pb2.RelayError | None = None
        try:
            async with aclosing(self._frames(ctx, url, frame)) as frames:
                async for parsed in frames:
                    out = answer.feed(parsed)
                    if out:
                        if not first_token_ms:
                            first_token_ms = int((time.perf_counter() - started) * 1000)
                        yield relay_pb2.RelayChunk(data=out)
        except _Failed as failed:
            error = failed.error
        upstream_ms = int((time.perf_counter() - started) * 1000)
        if error is not None and not answer.started:
            # Nothing reached the client: nothing to bill (another channel may still serve).
            yield relay_pb2.RelayChunk(
                end=relay_pb2.StreamEnd(error=error, upstream_ms=upstream_ms)
            )
            return
        usage = answer.usage or self._estimate(ctx, answer)
        ending = stream_ending(
            ctx,
            usage,
            answer.usage_frame,
            error=error,
            first_token_ms=first_token_ms,
            upstream_ms=upstream_ms,
        )
        for chunk in ending:
            yield chunk
