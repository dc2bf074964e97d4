"""One API's channel proxy (``/v1/oneapi/proxy/:channel/*``): a raw request sent to one
channel's base URL with the channel's key, its answer returned as it came.

Auth has already checked that the caller's key is an administrator's and that the channel is
an enabled OpenAI-protocol one; here the key is set the way the channel's type carries it
(``spec.auth_headers``: a bearer token, Azure's ``api-key``), never the client's. Redirects
are not followed (the key would travel to wherever they point) and the answer is bounded."""

from __future__ import annotations

import time

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
    timeout = channel_timeout(channel, http)
    started = time.perf_counter()
    try:
        async with http.request(
            request.method,
            url,
            data=request.body or None,
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
        ) as resp:
            content = await resp.content.read(MAX_ANSWER_BYTES + 1)
            if len(content) > MAX_ANSWER_BYTES:
                return relay_pb2.ProxyResult(
                    error=relay_error(
                        502,
                        f"The provider's answer is larger than {MAX_ANSWER_BYTES} bytes.",
                        code="proxy_answer_too_large",
                    )
                )
            kept = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
            return relay_pb2.ProxyResult(
                http_status=resp.status,
                headers=kept,
                body=content,
                upstream_ms=int((time.perf_counter() - started) * 1000),
            )
    except UPSTREAM_ERRORS as exc:
        return relay_pb2.ProxyResult(error=error_from_exception(exc))
