"""The one way an adapter talks HTTP to its provider: the channel's extra headers, the
first-byte timeout, reading the answer, decoding its JSON and the error when it cannot be
decoded. Adapters keep only what is theirs: URL, body, authentication and their error table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import (
    UPSTREAM_ERRORS,
    CallContext,
    error_from_exception,
    error_from_upstream,
    unreadable_but_used,
)


def ms_since(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
    return int((time.perf_counter() - started) * 1000)


def channel_headers(
    ctx: CallContext,
    defaults: dict[str, str] | None = None,
    then: dict[str, str] | None = None,
) -> dict[str, str]:
    """``defaults``, overridden by the channel's own ``headers_json``, overridden in turn by
    ``then`` (authentication the operator's headers must not replace)."""
    headers = dict(defaults or {})
    if ctx.channel.headers_json and ctx.channel.headers_json != "{}":
        extra = orjson.loads(ctx.channel.headers_json)
        headers.update({str(k): str(v) for k, v in extra.items()})
    headers.update(then or {})
    return headers


async def open_upstream(
    ctx: CallContext,
    url: str | URL,
    *,
    data: bytes | aiohttp.FormData,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST to the provider and return its response once its headers arrived.

    The response headers are the first byte: the wait for them is bounded here, since
    aiohttp's sock_read alone was seen not to fire while a provider sat on a request.
    Raises one of ``UPSTREAM_ERRORS``.
    """
    return await asyncio.wait_for(
        ctx.http.post(url, data=data, headers=headers, params=params, timeout=ctx.timeout()),
        ctx.first_byte_seconds(),
    )


def decoded(content: bytes) -> Any | None:
    """``content`` decoded as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


@dataclass(slots=True)
class Answer:
    """A provider's whole (non-streaming) HTTP answer."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes
    upstream_ms: int

    def json(self) -> Any | None:
        """The decoded body, or None when it is not JSON."""
        return decoded(self.content)

    def json_object(self) -> dict[str, Any] | None:
        """The decoded body when it is a JSON object, else None."""
        data = self.json()
        return data if isinstance(data, dict) else None

    def failed(self, error: relay_pb2.RelayError) -> relay_pb2.RelayResult:
        """The result that reports ``error`` for this answer."""
        return relay_pb2.RelayResult(error=error, upstream_ms=self.upstream_ms)

    def unreadable(self, usage: common_pb2.Usage | None = None) -> relay_pb2.RelayResult:
        """The result for an answer whose body could not be decoded or understood; with the
        ``usage`` it reported nonetheless, billed (see :func:`unreadable_but_used`)."""
        return unreadable_but_used(self.status, usage or common_pb2.Usage(), self.upstream_ms)

    def upstream_failure(self, ctx: CallContext) -> relay_pb2.RelayResult:
        """The result for an HTTP error answer, mapped by the shared OpenAI-style table
        (the channel's keys scrubbed from the provider's words)."""
        return self.failed(
            error_from_upstream(self.status, self.content, self.headers, list(ctx.channel.keys))
        )


async def read_answer(
    opening: Awaitable[aiohttp.ClientResponse],
) -> Answer | relay_pb2.RelayResult:
    """Await ``opening`` (an adapter's :func:`open_upstream` call) and read the whole answer,
    timed from now; a failed exchange (connection, timeout, redirect) comes back as the
    failed result. An adapter's own exceptions raised while opening pass through."""
    started = time.perf_counter()
    try:
        async with await opening as resp:
            status, headers, content = resp.status, resp.headers, await resp.read()
    except UPSTREAM_ERRORS as exc:
        return relay_pb2.RelayResult(error=error_from_exception(exc))
    return Answer(status, headers, content, ms_since(started))


async def read_refusal(resp: aiohttp.ClientResponse) -> Answer | relay_pb2.RelayError:
    """Read (and give back) a response that answered a streaming request with an error body
    instead of events; a broken read comes back as its error."""
    try:
        async with resp:
            content = await resp.read()
    except UPSTREAM_ERRORS as exc:
        return error_from_exception(exc)
    return Answer(resp.status, resp.headers, content, 0)


def json_result(
    body: bytes, usage: common_pb2.Usage, upstream_ms: int, *, status: int = 200
) -> relay_pb2.RelayResult:
    """A successful answer in OpenAI's JSON shape, with the usage it is billed by."""
    return relay_pb2.RelayResult(
        http_status=status,
        content_type="application/json",
        body=body,
        usage=usage,
        upstream_ms=upstream_ms,
    )


def let_go(resp: aiohttp.ClientResponse, *, reusable: bool) -> None:
    """Hand back a stream's response: one read to its end goes back to the connection pool;
    one abandoned (client gone, error, truncated) is closed, so that its connection is not
    reused mid-stream."""
    if reusable:
        resp.release()
    else:
        resp.close()
