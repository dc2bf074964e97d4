"""Tencent Hunyuan (channel type 23): ``ChatCompletions`` of Tencent Cloud API 3.0, every
request signed with TC3-HMAC-SHA256 from the channel's ``SecretId|SecretKey`` (One API's
``AppId|SecretId|SecretKey`` is accepted too; the AppId plays no part in API 3.0).

Reference: https://cloud.tencent.com/document/api/1729/105701 (ChatCompletions),
https://cloud.tencent.com/document/api/213/30654 (signing). The channel's config may set
``{"region": "ap-guangzhou"}`` (sent as ``X-TC-Region``; Hunyuan does not need one).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson
from yarl import URL

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    Provider,
    client_mistake,
    credentials_rejected,
    error_from_exception,
    unreadable_answer,
)
from unigate_relay.providers.hunyuan import signer
from unigate_relay.providers.hunyuan.convert import (
    Unsupported,
    chat_body,
    finish_reason,
    openai_tool_calls,
    usage_of,
)
from unigate_relay.providers.hunyuan.errors import map_error, stream_error, tencent_error
from unigate_relay.providers.hunyuan.stream import ChunkTranslator
from unigate_relay.providers.native_stream import relay_sse_stream
from unigate_relay.providers.openai_shapes import completion_body, completion_id
from unigate_relay.providers.upstream import (
    channel_headers,
    json_result,
    open_upstream,
    read_answer,
    read_refusal,
)

DEFAULT_BASE_URL = "https://hunyuan.tencentcloudapi.com"
SERVICE = "hunyuan"
ACTION = "ChatCompletions"
VERSION = "2023-09-01"
CONTENT_TYPE = "application/json"


class BadKey(ValueError):
    pass


def split_key(channel_key: str) -> tuple[str, str]:
    """(SecretId, SecretKey) from ``SecretId|SecretKey`` or ``AppId|SecretId|SecretKey``."""
    parts = [p.strip() for p in channel_key.split("|")]
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2 or not all(parts):
        raise BadKey("A Hunyuan channel key must be `SecretId|SecretKey`.")
    return parts[0], parts[1]


def _host(url: URL) -> str:
    """The Host header aiohttp sends for ``url``, which is what gets signed."""
    assert url.host is not None
    return url.host if url.is_default_port() else f"{url.host}:{url.port}"


class HunyuanProvider(Provider):
    family: ClassVar[str] = "hunyuan"
    channel_types: ClassVar[tuple[int, ...]] = (23,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions"})

    def _prepare(self, ctx: CallContext, *, stream: bool) -> tuple[str, bytes, dict[str, str]]:
        """URL, body and signed headers. Raises Unsupported or BadKey."""
        request = orjson.loads(ctx.request.body)
        payload = orjson.dumps(chat_body(request, ctx.request.upstream_model, stream=stream))
        secret_id, secret_key = split_key(ctx.api_key)
        url = URL((ctx.channel.base_url or DEFAULT_BASE_URL).rstrip("/") + "/")
        host = _host(url)
        timestamp = int(time.time())
        headers = channel_headers(
            ctx,
            then={
                "Content-Type": CONTENT_TYPE,
                "Host": host,
                "X-TC-Action": ACTION,
                "X-TC-Version": VERSION,
                "X-TC-Timestamp": str(timestamp),
                "Authorization": signer.authorization(
                    secret_id=secret_id,
                    secret_key=secret_key,
                    service=SERVICE,
                    host=host,
                    content_type=CONTENT_TYPE,
                    timestamp=timestamp,
                    payload=payload,
                ),
            },
        )
        config = orjson.loads(ctx.channel.config_json) if ctx.channel.config_json else {}
        if isinstance(config, dict) and config.get("region"):
            headers["X-TC-Region"] = str(config["region"])
        return str(url), payload, headers

    async def _post(
        self, ctx: CallContext, url: str, payload: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        return await open_upstream(ctx, url, data=payload, headers=headers)

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        secrets = list(ctx.channel.keys)
        try:
            url, payload, headers = self._prepare(ctx, stream=False)
        except Unsupported as exc:
            return relay_pb2.RelayResult(error=client_mistake(str(exc)))
        except BadKey:
            return relay_pb2.RelayResult(error=credentials_rejected(401))
        reply = await read_answer(self._post(ctx, url, payload, headers))
        if isinstance(reply, relay_pb2.RelayResult):
            return reply
        upstream_ms = reply.upstream_ms
        parsed = reply.json()
        failure = tencent_error(parsed)
        if failure is not None:
            return reply.failed(map_error(*failure, secrets))
        answer = parsed.get("Response") if isinstance(parsed, dict) else None
        if reply.status >= 400 or not isinstance(answer, dict):
            return reply.unreadable()
        choices = [c for c in answer.get("Choices") or [] if isinstance(c, dict)]
        choice: dict[str, Any] = choices[0] if choices else {}
        found = choice.get("Message")
        raw: dict[str, Any] = found if isinstance(found, dict) else {}
        message: dict[str, Any] = {"content": str(raw.get("Content") or "")}
        calls = openai_tool_calls(raw.get("ToolCalls"))
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            message["content"] = message["content"] or None
        usage = usage_of(answer)
        return json_result(
            completion_body(
                id=completion_id(),
                model=ctx.request.upstream_model,
                message=message,
                finish_reason=finish_reason(choice.get("FinishReason")) or "stop",
                usage=usage,
                created=int(answer.get("Created") or 0) or None,
            ),
            usage,
            upstream_ms,
        )

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        secrets = list(ctx.channel.keys)
        try:
            url, payload, headers = self._prepare(ctx, stream=True)
        except Unsupported as exc:
            error = client_mistake(str(exc))
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        except BadKey:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=credentials_rejected(401)))
            return
        started = time.perf_counter()
        try:
            resp = await self._post(ctx, url, payload, headers)
        except UPSTREAM_ERRORS as exc:
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error_from_exception(exc)))
            return
        if "event-stream" not in resp.headers.get("Content-Type", ""):
            # A refused request is answered with the usual JSON error, not a stream.
            refusal = await read_refusal(resp)
            if isinstance(refusal, relay_pb2.RelayError):
                error = refusal
            elif failure := tencent_error(refusal.json()):
                error = map_error(*failure, secrets)
            else:
                error = unreadable_answer(refusal.status)
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(error=error))
            return
        translator = ChunkTranslator.for_call(ctx)

        def in_band_error(payload: dict[str, Any]) -> relay_pb2.RelayError | None:
            failure = stream_error(payload)
            return map_error(*failure, secrets) if failure is not None else None

        async for chunk in relay_sse_stream(
            ctx, resp, started, translator, payload_error=in_band_error
        ):
            yield chunk
