"""Limits the gateway enforces on every connection and request before buffering anything.

nginx is not always in front of the gateway, so the gateway protects itself:

- :class:`EdgeHttpProtocol` (uvicorn's httptools protocol with limits) counts the bytes of
  a request's head (request line and headers) as they arrive and the headers as they are
  parsed: a head over ``MAX_HEADER_BYTES`` or with more than ``MAX_HEADER_COUNT`` headers is
  answered 431 and the connection closed, before the head is ever whole in memory. A head
  that takes longer than ``HEADER_READ_TIMEOUT`` (a slow-loris client, or a connection that
  never sends) is answered 408 and closed.
- :class:`BodyLimit` (a raw ASGI middleware) gives each route family its own body limit
  (:class:`BodyLimits`): a declared ``Content-Length`` over it is answered 413 at once,
  before a byte of the body is read; a body without one (chunked) is counted as it is read
  and cut at the limit with the same 413.

Both answer in the shape the route's clients expect and close the connection (the rest of
the body is never read). The close lingers as nginx's does (:class:`LingeringTransport`):
the answer is followed by a FIN, and what the client still sends is read and dropped for a
moment, so that it reads the 413 instead of a reset from a socket closed on unread data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from unigate.anthropic_errors import type_of_status
from unigate.google_errors import google_error_body

# Audio uploads (multipart): the routes allowed the largest bodies.
UPLOAD_PATHS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
API_PREFIX = "/api"
ANTHROPIC_PREFIX = "/v1/messages"
GEMINI_PREFIXES = ("/v1beta/", "/v1/models/")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Largest request body, in bytes, by route family."""

    api: int
    upload: int
    relay: int

    def for_path(self, path: str) -> int:
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return self.api
        if path in UPLOAD_PATHS:
            return self.upload
        return self.relay


def refusal_body(path: str, status: int, message: str, code: str) -> bytes:
    """A refusal in the route's own shape: One API's envelope on ``/api``, Anthropic's error
    on its Messages routes (its own ``request_too_large`` type for a 413), Google's on the
    Gemini-native routes, OpenAI's error object elsewhere."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return orjson.dumps({"success": False, "message": message, "data": None})
    if path.startswith(ANTHROPIC_PREFIX):
        # Every status refused here (408, 413, 431) is the client's: Anthropic's table gives
        # request_too_large for 413 and invalid_request_error for the others.
        etype = type_of_status(status)
        return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})
    if path.startswith(GEMINI_PREFIXES):
        return orjson.dumps(google_error_body(status, message))
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )


async def send_refusal(send: Send, path: str, status: int, message: str, code: str) -> None:
    body = refusal_body(path, status, message, code)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # llhttp refuses a malformed Content-Length before this
    return None


class BodyLimit:
    """Refuses bodies over the route's limit, by ``Content-Length`` up front or while
    reading. A cut body reaches the application as a client disconnect; what it sends
    after the 413 is dropped."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limits.for_path(path)
        message = f"Request body too large: at most {limit} bytes on this route."
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await send_refusal(send, path, 413, message, "request_too_large")
            return
        received = 0
        started = False
        answered = False

        async def capped_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    if not started:
                        answered = True
                        await send_refusal(send, path, 413, message, "request_too_large")
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event: Message) -> None:
            nonlocal started
            if answered:
                return
            if event["type"] == "http.response.start":
                started = True
            await send(event)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except Exception:
            # The application's own reaction to the cut (ClientDisconnect): already answered.
            if not answered:
                raise


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_bytes: int
    max_count: int
    read_timeout: float


# status -> (reason phrase, error code)
_HEAD_REFUSALS = {
    408: (b"Request Timeout", "request_timeout"),
    431: (b"Request Header Fields Too Large", "request_header_fields_too_large"),
}


def _is_final_head(data: bytes) -> bool:
    """A response's status line and headers as uvicorn writes them, not a 1xx (an interim
    answer such as ``100 Continue`` goes out at once: the client waits for it)."""
    return (
        data.startswith(b"HTTP/1.1 ")
        and not data.startswith(b"HTTP/1.1 1")
        and data.endswith(b"\r\n\r\n")
    )


# After a closing answer: how long, and how many bytes, the client's leftovers are drained.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


class LingeringTransport(asyncio.Transport):
    """The connection's transport, whose ``close`` half-closes (FIN after what is buffered)
    and drains what the client still sends for a moment before the real close.

    It also sends a response's head together with the first bytes of its body: uvicorn
    writes the status line and headers, then the body, each a ``send`` system call of its
    own (measured: the gateway's socket writes were a sixth of its CPU at 32 connections).
    The head is held until the next write or, at the latest, the end of the event loop's
    current step, so nothing waits longer than that."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._t = transport
        self._loop = loop
        self.lingering = False
        self._drained = 0
        self._head: bytes | None = None

    def _hold_head(self, data: bytes) -> None:
        self._head = data
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._t.is_closing():
            self._t.write(head)

    def close(self) -> None:
        self._flush()
        if self.lingering or self._t.is_closing():
            return
        if not self._t.can_write_eof():
            self._t.close()
            return
        self.lingering = True
        self._t.write_eof()
        self._t.resume_reading()
        self._loop.call_later(LINGER_SECONDS, self._t.close)

    def close_now(self) -> None:
        self._flush()
        self._t.close()

    def drain(self, size: int) -> None:
        """Leftover bytes read while lingering: dropped, up to LINGER_BYTES."""
        self._drained += size
        if self._drained > LINGER_BYTES:
            self._t.close()

    def is_closing(self) -> bool:
        return self.lingering or self._t.is_closing()

    def abort(self) -> None:
        self._head = None
        self._t.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lingering:
            return
        head = self._head
        if head is not None:
            self._head = None
            self._t.writelines((head, data))  # one writev
        elif isinstance(data, bytes) and _is_final_head(data):
            self._hold_head(data)
        else:
            self._t.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        if not self.lingering:
            self._flush()
            self._t.writelines(list_of_data)

    def write_eof(self) -> None:
        self._flush()
        self._t.write_eof()

    def can_write_eof(self) -> bool:
        return self._t.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._t.get_extra_info(name, default)

    def pause_reading(self) -> None:
        if not self.lingering:
            self._t.pause_reading()

    def resume_reading(self) -> None:
        self._t.resume_reading()

    def is_reading(self) -> bool:
        return self._t.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._t.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._t.get_write_buffer_size() + len(self._head or b"")

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._t.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._t.get_protocol()


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on each request's head (see the module
    docstring). Subclassed per configuration by :func:`http_protocol`."""

    LIMITS = HeadLimits(max_bytes=16 * 1024, max_count=100, read_timeout=10.0)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    # A head is "in progress" from the connection's (or the previous message's) end until
    # its headers are complete; the timer and the byte count cover exactly that time.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = LingeringTransport(transport, self.loop)
        super().connection_made(self._lingering)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering.lingering:
            self._lingering.drain(len(data))
            return
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
            self._arm_head_timer()
        super().data_received(data)
        if not self._refused and self._in_head and self._head_bytes > self.LIMITS.max_bytes:
            self._refuse(431, "Request headers too large.")

    def shutdown(self) -> None:
        super().shutdown()
        if self._lingering.lingering:  # the server is stopping: no more leftovers to drain
            self._lingering.close_now()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal of ours stops the parser with an error: answered
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.LIMITS.max_count:
            self._refuse(431, "Too many request headers.")
            raise httptools.HttpParserError("too many headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.LIMITS.max_bytes:
            self._refuse(431, "Request headers too large.")
            raise httptools.HttpParserError("headers too large")
        self._in_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self.LIMITS.read_timeout > 0:
            self._head_timer = self.loop.call_later(self.LIMITS.read_timeout, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head or self._refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits for the answer still going out: not the client's delay.
            self._arm_head_timer()
            return
        if self._head_bytes:
            self._refuse(408, "The request headers took too long to arrive.")
        else:
            # Connected and silent: close without an answer, as the keep-alive timeout does.
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm_head_timer()
        reason, code = _HEAD_REFUSALS[status]
        # The request line comes first: its path (when read) picks the answer's shape.
        path = getattr(self, "url", b"").split(b"?", 1)[0].decode("latin-1")
        body = refusal_body(path, status, message, code)
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        self.transport.write(
            head
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def http_protocol(limits: HeadLimits) -> type[EdgeHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type("ConfiguredEdgeHttpProtocol", (EdgeHttpProtocol,), {"LIMITS": limits})
