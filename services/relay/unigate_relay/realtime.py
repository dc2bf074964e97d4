"""Realtime API sessions: one upstream WebSocket (OpenAI's ``/v1/realtime`` or Azure's
``/openai/realtime``) per gateway ``Realtime`` stream, events passed through both ways.

The relay reads only what billing needs: each ``response.created`` binds the response to
the request id the gateway reserved for the session's next response, and each
``response.done`` carries that response's usage down (in unigate's terms) and records it next
to its reservation, so a gateway that dies mid-session still has each response billed at
what the provider reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import orjson

from unigate.v1 import common_pb2, relay_pb2
from unigate_relay.providers.base import CallContext, credentials_rejected, relay_error
from unigate_relay.providers.compatible.azure import azure_settings
from unigate_relay.usage_record import UsageRecorder

log = logging.getLogger(__name__)

REALTIME_ENDPOINT = "realtime"
OPENAI, OPENAI_COMPATIBLE, AZURE = 1, 8, 3
REALTIME_CHANNEL_TYPES = frozenset({OPENAI, OPENAI_COMPATIBLE, AZURE})
OPENAI_BASE = "https://api.openai.com"
# Azure's realtime API version when the channel's config names none ("realtime_api_version").
AZURE_REALTIME_API_VERSION = "2025-04-01-preview"
# The largest event a client or provider may send (a 15 MiB audio append is OpenAI's limit).
MAX_EVENT_BYTES = 16 * 1024 * 1024
# How long a session whose provider socket closed waits for the gateway to end its side.
HALF_CLOSE_SECONDS = 10.0


def _ws_base(base_url: str) -> str:
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def upstream_target(ctx: CallContext, beta: str) -> tuple[str, dict[str, str]]:
    """(URL, headers) of the provider's realtime endpoint for this channel."""
    channel = ctx.channel
    model = ctx.request.upstream_model or ctx.request.model
    if channel.type == AZURE:
        settings = azure_settings(channel.config_json)
        try:
            raw = orjson.loads(channel.config_json) if channel.config_json else {}
        except orjson.JSONDecodeError:
            raw = {}
        version = raw.get("realtime_api_version") if isinstance(raw, dict) else None
        if not isinstance(version, str) or not version:
            version = AZURE_REALTIME_API_VERSION
        url = (
            f"{_ws_base(channel.base_url)}/openai/realtime?api-version={quote(version, safe='')}"
            f"&deployment={quote(settings.deployment(model), safe='')}"
        )
        headers = {"api-key": ctx.api_key}
    else:
        base = channel.base_url or OPENAI_BASE
        url = f"{_ws_base(base)}/v1/realtime?model={quote(model, safe='')}"
        headers = {"Authorization": f"Bearer {ctx.api_key}"}
    if beta:
        headers["OpenAI-Beta"] = beta
    return url, headers


def usage_of(response: dict[str, Any]) -> common_pb2.Usage:
    """A ``response.done`` usage in unigate's terms: audio input not read from the cache is
    ``audio_tokens`` (the cached part is priced as any cached token), audio output is
    ``audio_completion_tokens``."""
    u = response.get("usage") or {}
    details = u.get("input_token_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    cached_audio = int((details.get("cached_tokens_details") or {}).get("audio_tokens") or 0)
    out = u.get("output_token_details") or {}
    prompt = int(u.get("input_tokens") or 0)
    completion = int(u.get("output_tokens") or 0)
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(u.get("total_tokens") or prompt + completion),
        cached_tokens=cached,
        audio_tokens=max(int(details.get("audio_tokens") or 0) - cached_audio, 0),
        audio_completion_tokens=int(out.get("audio_tokens") or 0),
    )


def _options(body: bytes) -> str:
    """The handshake options the gateway passed in the open request's body (the client's
    ``OpenAI-Beta``, which selects the beta or GA interface)."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return ""
    beta = data.get("openai_beta") if isinstance(data, dict) else None
    return beta if isinstance(beta, str) else ""


async def run_session(
    ctx: CallContext,
    upstream: AsyncIterator[relay_pb2.RealtimeUp],
    usage: UsageRecorder,
) -> AsyncIterator[relay_pb2.RealtimeDown]:
    """Open the provider's socket, then pass events both ways until either side ends."""
    request = ctx.request
    url, headers = upstream_target(ctx, _options(request.body))
    try:
        ws = await ctx.http.ws_connect(
            url, headers=headers, max_msg_size=MAX_EVENT_BYTES, autoping=True, heartbeat=30
        )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (401, 403):
            yield relay_pb2.RealtimeDown(error=credentials_rejected(exc.status))
        else:
            yield relay_pb2.RealtimeDown(
                error=relay_error(
                    502 if exc.status < 500 else exc.status,
                    f"The provider refused the realtime connection ({exc.status}).",
                    type="upstream_error",
                    code="upstream_error",
                    retryable=True,
                    upstream_status=exc.status,
                )
            )
        return
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("realtime connect failed: %s", type(exc).__name__)
        yield relay_pb2.RealtimeDown(
            error=relay_error(
                502,
                "The provider's realtime endpoint could not be reached.",
                type="upstream_error",
                code="upstream_unreachable",
                retryable=True,
            )
        )
        return
    # The request id the next response is billed under, and each response's once created.
    next_id = [request.request_id]
    bound: dict[str, str] = {}

    def observe(text: str, down: relay_pb2.RealtimeDown | None) -> None:
        """Bind a created response to its request id; record a finished one's usage next to
        its reservation (and put it on ``down``)."""
        if '"response.created"' not in text and '"response.done"' not in text:
            return
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        response = event.get("response") if isinstance(event, dict) else None
        if not isinstance(response, dict):
            return
        rid = str(response.get("id", ""))
        if event.get("type") == "response.created":
            bound[rid] = next_id[0]
        elif event.get("type") == "response.done":
            found = usage_of(response)
            if down is not None:
                down.usage.CopyFrom(found)
            billed = relay_pb2.RelayRequest()
            billed.CopyFrom(request)
            billed.body = b""
            billed.request_id = billed.reservation_id = bound.pop(rid, next_id[0])
            usage.ended(billed, found, status=200)

    async def pump_up() -> None:
        async for up in upstream:
            kind = up.WhichOneof("kind")
            if kind == "event":
                # Read on after a failed send too (the receive loop sees the socket's end):
                # the gateway's half-close is what ends this session's gRPC stream.
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    if not ws.closed:
                        await ws.send_str(up.event)
            elif kind == "next_request_id":
                next_id[0] = up.next_request_id
        # The gateway has closed its side (its client left, after the responses it waited
        # for): end the session; with responses still in flight (the gateway died and its
        # stream simply ended) leave the socket to the drain that its cancellation starts.
        if not bound:
            await ws.close()

    up_task = asyncio.create_task(pump_up())
    handed_off = False
    yield relay_pb2.RealtimeDown(opened=True)
    try:
        reason = ""
        while True:
            msg = await ws.receive()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                reason = msg.extra if isinstance(msg.extra, str) else ""
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue  # the Realtime API speaks JSON text frames only
            down = relay_pb2.RealtimeDown(event=msg.data)
            observe(msg.data, down)
            yield down
        yield relay_pb2.RealtimeDown(close_code=ws.close_code or 1000, close_reason=reason)
        # The stream ends when the gateway, told the close code, ends its side. Until then it
        # may still write (the next response's request id, reserved as this one started),
        # and a write to a call already ended fails the gateway's whole call, the close code
        # unread ("Internal error from Core"): seen in CI as a 1011 turned into a 3000.
        await asyncio.wait({up_task}, timeout=HALF_CLOSE_SECONDS)
    except asyncio.CancelledError:
        if bound and not ws.closed:
            # The gateway is gone mid-response: finish its responses upstream in the
            # background and record their usage, which billing's sweeper then charges.
            handed_off = True
            _spawn(_drain(ws, list(bound), observe))
        raise
    finally:
        up_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await up_task
        if not handed_off and not ws.closed:
            await ws.close()


# Sessions whose gateway went away, finishing their responses (kept referenced until done).
_draining: set[asyncio.Task[None]] = set()
DRAIN_SECONDS = 15.0


def _spawn(coro: Any) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    _draining.add(task)
    task.add_done_callback(_draining.discard)


async def _drain(
    ws: aiohttp.ClientWebSocketResponse,
    responses: list[str],
    observe: Any,
) -> None:
    """Cancel the responses in flight and read until each reported its usage (``observe``
    records it), then close the provider's socket."""
    waiting = set(responses)
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            for rid in responses:
                await ws.send_str(
                    orjson.dumps({"type": "response.cancel", "response_id": rid}).decode()
                )
            while waiting:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                observe(msg.data, None)
                if '"response.done"' in msg.data:
                    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                        waiting.discard(str(orjson.loads(msg.data)["response"]["id"]))
    except (TimeoutError, aiohttp.ClientError, ConnectionError, KeyError, TypeError):
        log.warning("realtime responses left unfinished by a lost gateway: %d", len(waiting))
    finally:
        await ws.close()
