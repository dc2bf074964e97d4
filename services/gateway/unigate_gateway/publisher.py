"""Publishing usage events to JetStream off the response path.

Events wait in a bounded in-memory buffer and are published by a few workers that retry until
JetStream acknowledges; the ``Nats-Msg-Id`` header (the request id) lets JetStream drop a
duplicate publish after a retry whose ack was lost.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext

from unigate.v1 import events_pb2

log = logging.getLogger(__name__)


class UsagePublisher:
    def __init__(
        self, js: JetStreamContext, subject: str, *, max_buffer: int, workers: int = 16
    ) -> None:
        self._js = js
        self._subject = subject
        self._queue: asyncio.Queue[events_pb2.UsageEvent] = asyncio.Queue(max_buffer)
        self._workers_n = workers
        self._workers: list[asyncio.Task[None]] = []
        self.published = 0

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._workers_n)]

    def publish(self, event: events_pb2.UsageEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # Never silently: the event is logged whole so it can be replayed by hand.
            log.error("usage buffer full; event not queued: %s", event.SerializeToString().hex())

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            data = event.SerializeToString()
            delay = 0.1
            while True:
                try:
                    await self._js.publish(
                        self._subject,
                        data,
                        timeout=5.0,
                        headers={"Nats-Msg-Id": event.request_id},
                    )
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("usage publish failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self.published += 1
            self._queue.task_done()

    async def close(self, grace: float = 10.0) -> None:
        """Flush what is buffered (bounded by ``timeout``), then stop the workers."""
        try:
            await asyncio.wait_for(self._queue.join(), grace)
        except TimeoutError:
            log.error("%d usage events not published at shutdown", self._queue.qsize())
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
