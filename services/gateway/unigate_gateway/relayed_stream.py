"""The response of a relayed stream: Starlette's ``StreamingResponse`` without its task group.

Under ASGI spec 2.3 (what uvicorn's httptools protocol declares) Starlette streams from a
child task of an anyio task group while the request's own task waits for the client's
disconnect, then cancels the group. Per stream that is a task group, its cancel scopes and a
task, and the head and first chunk go out one event-loop turn after the response is handed
over. Here the request's own task streams, and one plain task watches for the disconnect and
cancels it, which is what the group's cancel did: the body iterator sees the client leaving
as a cancellation at its ``await`` (the proxy records the call as client-closed and stops the
relay's stream), and the response ends quietly.
"""

from __future__ import annotations

import asyncio

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class RelayedStream(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def watch() -> None:
            nonlocal left
            # The body was read already: what comes now is the end (disconnect, or the
            # response complete, which uvicorn also reports as a disconnect).
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            # Cancelled from outside too (shutdown): not ours to swallow.
            if not left or streaming.uncancel() > 0:
                raise
            # The client left: its stream ended there, as Starlette's response ends.
        finally:
            watcher.cancel()
        if self.background is not None:
            await self.background()
