"""The relayed stream's response: streamed from the request's own task, stopped when the
client leaves (the body iterator sees a cancellation), never swallowing a cancellation that
is not the client's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from unigate_gateway.relayed_stream import RelayedStream

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}


class Client:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.events: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        return await self.events.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def test_streams_every_chunk_after_the_head() -> None:
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await asyncio.sleep(0)
        yield b"data: 2\n\n"

    await RelayedStream(body(), media_type="text/event-stream")(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start"
    assert client.sent[0]["status"] == 200
    assert [m.get("body") for m in client.sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert client.sent[-1]["more_body"] is False


async def test_a_client_that_leaves_stops_the_body_and_ends_the_response_quietly() -> None:
    client = Client()
    waiting = asyncio.Event()
    stopped: list[str] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            waiting.set()
            await asyncio.sleep(30)  # the relay's next chunk, which never comes
            yield b"data: 2\n\n"
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise

    response = asyncio.create_task(
        RelayedStream(body(), media_type="text/event-stream")(SCOPE, client.receive, client.send)
    )
    await waiting.wait()
    await client.events.put({"type": "http.disconnect"})
    await asyncio.wait_for(response, 5)  # returns, without raising
    assert stopped == ["cancelled"]
    assert [m.get("body") for m in client.sent[1:]] == [b"data: 1\n\n"]
    assert not response.cancelled()


async def test_a_cancellation_from_outside_is_not_swallowed() -> None:
    client = Client()
    waiting = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        waiting.set()
        await asyncio.sleep(30)
        yield b"data: 2\n\n"

    response = asyncio.create_task(
        RelayedStream(body(), media_type="text/event-stream")(SCOPE, client.receive, client.send)
    )
    await waiting.wait()
    response.cancel()  # a shutdown
    with pytest.raises(asyncio.CancelledError):
        await response
