"""Raw-ASGI plumbing shared by the simulators that wrap another app (Azure, compatible
providers): reading a whole request body and sending a whole response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def json_or_none(body: bytes) -> Any:
    """``body`` parsed as JSON, or None when it is empty or not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


async def read_all(receive: Receive) -> bytes:
    """The whole request body, however many messages it came in."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """One complete response (JSON unless ``headers`` name another content type)."""
    if not any(k.lower() == b"content-type" for k, _ in headers):
        headers = [*headers, (b"content-type", b"application/json")]
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, body: Any) -> None:
    await send_whole(send, status, [], orjson.dumps(body))


async def call_whole(
    app: Callable[[Scope, Receive, Send], Awaitable[None]], scope: Scope, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on ``scope`` with ``body`` as the request and collect its whole answer:
    status, headers (``content-length`` dropped, the caller re-sends a body of its own) and
    body. A wrapping simulator uses it to call the simulator it wraps."""
    sent: list[Message] = []
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def collect(message: Message) -> None:
        sent.append(message)

    await app(scope, replay, collect)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
    return int(start["status"]), headers, answer
