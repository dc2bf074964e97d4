"""One API's channel proxy (``/v1/oneapi/proxy/:channel/*``): a raw request sent to one
channel's base URL with the channel's key, its answer returned as it came.

Auth has already checked that the caller's key is an administrator's and that the channel is
an enabled OpenAI-protocol one; here the key is set the way the channel's type carries it
(``spec.auth_headers``: a bearer token, Azure's ``api-key``), never the client's. Redirects
are not followed (the key would travel to wherever they point) and the answer is bounded."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.channels import ChannelConfigs, ChannelNotFound
from unigate_relay.providers.base import UPSTREAM_ERRORS, error_from_exception, relay_error
from unigate_relay.providers.openai.adapter import spec_for

# A proxied answer is held whole in memory and in one gRPC message.
MAX_ANSWER_BYTES = 3 * 1024 * 1024
# Answer headers that describe the connection or the encoding aiohttp already undid.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "upgrade",
        "proxy-authenticate",
        "set-cookie",
    }
)


def channel_timeout(
    channel: auth_pb2.Channel, http: aiohttp.ClientSession
) -> aiohttp.ClientTimeout:
    """A raw call's timeout: the channel's own (connect and each read), else the session's."""
    seconds = channel.timeout_ms / 1000 if channel.timeout_ms > 0 else None
    if not seconds:
        return http.timeout
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    headers: Mapping[str, str]
    # At most the caller's limit + 1 bytes: longer than the limit means the answer was too.
    body: bytes
    ms: int


async def raw_call(
    http: aiohttp.ClientSession,
    channel: auth_pb2.Channel,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    limit: int,
) -> RawAnswer:
    """One request to a channel's provider as given (the channel proxy's, a Message Batches
    call): the channel's timeout, redirects never followed (credentials never cross to another
    origin), at most ``limit`` + 1 bytes of the answer read. Raises ``UPSTREAM_ERRORS``."""
    started = time.perf_counter()
    async with http.request(
        method,
        url,
        data=body or None,
        headers=dict(headers),
        allow_redirects=False,
        timeout=channel_timeout(channel, http),
    ) as resp:
        content = await resp.content.read(limit + 1)
        return RawAnswer(
            resp.status, resp.headers, content, int((time.perf_counter() - started) * 1000)
        )


async def proxy_call(
    request: relay_pb2.ProxyRequest, channels: ChannelConfigs, http: aiohttp.ClientSession
) -> relay_pb2.ProxyResult:
    try:
        channel = await channels.get(request.channel_id, request.config_version)
    except ChannelNotFound:
        return relay_pb2.ProxyResult(
            error=relay_error(404, "The channel no longer exists.", code="channel_gone")
        )
    if not request.path.startswith("/"):
        return relay_pb2.ProxyResult(
            error=relay_error(400, "The proxied path must start with '/'.", code="bad_path")
        )
    spec = spec_for(channel.type)
    url = (channel.base_url or spec.default_base_url).rstrip("/") + request.path
    headers = dict(request.headers)
    key, _fingerprint = channels.next_key(channel.id)
    headers.update(spec.auth_headers(key))
    try:
        answer = await raw_call(
            http, channel, request.method, url, request.body, headers, MAX_ANSWER_BYTES
        )
    except UPSTREAM_ERRORS as exc:
        return relay_pb2.ProxyResult(error=error_from_exception(exc))
    if len(answer.body) > MAX_ANSWER_BYTES:
        return relay_pb2.ProxyResult(
            error=relay_error(
                502,
                f"The provider's answer is larger than {MAX_ANSWER_BYTES} bytes.",
                code="proxy_answer_too_large",
            )
        )
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
    return relay_pb2.ProxyResult(
        http_status=answer.status, headers=kept, body=answer.body, upstream_ms=answer.ms
    )
