"""Publishing usage events to JetStream off the response path.

Events wait in a bounded in-memory buffer and are published by a worker that retries until
JetStream acknowledges. It packs whatever is waiting (up to ``max_batch``) into one
``UsageBatch`` message, so publishing costs one round trip per batch, not per request; it
lingers ``linger`` seconds after the first event of a batch so that, at any load, a batch
holds more than one event (a JetStream publish and its ack cost the gateway and billing far
more CPU than the request they record; the events wait in memory that much longer); one
worker keeps the stream in the order the requests ended (several would race each other's
publishes), and batching already absorbs bursts while an ack is awaited. The
``Nats-Msg-Id`` header, derived from the batch's request ids, lets JetStream drop a duplicate
publish after a retry whose ack was lost; the ledger is idempotent per request id anyway.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext

from unigate import telemetry
from unigate.retrying import backoff
from unigate.v1 import events_pb2
from unigate_gateway import metrics

log = logging.getLogger(__name__)


class UsagePublisher:
    def __init__(
        self,
        js: JetStreamContext,
        subject: str,
        *,
        max_buffer: int,
        workers: int = 1,
        max_batch: int = 256,
        linger: float = 0.0,
    ) -> None:
        self._js = js
        self._subject = subject
        self._queue: asyncio.Queue[events_pb2.UsageEvent] = asyncio.Queue(max_buffer)
        self._workers_n = workers
        self._max_batch = max_batch
        self._linger = linger
        self._in_hand = 0
        self._workers: list[asyncio.Task[None]] = []
        self.published = 0

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._workers_n)]
        metrics.USAGE_BUFFER.set_function(lambda: self.pending)

    def publish(self, event: events_pb2.UsageEvent) -> None:
        if telemetry.recording():
            # Called in the request's context: the event carries it through the batch to billing.
            telemetry.stamp_event(event.trace_context)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            metrics.USAGE_DROPPED.inc()
            # Never silently: the event is logged whole so it can be replayed by hand.
            log.error("usage buffer full; event not queued: %s", event.SerializeToString().hex())

    @property
    def pending(self) -> int:
        """Events handed over whose batch JetStream has not acknowledged yet."""
        return self._queue.qsize() + self._in_hand

    def _take_batch(self, first: events_pb2.UsageEvent) -> list[events_pb2.UsageEvent]:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _work(self) -> None:
        while True:
            first = await self._queue.get()
            self._in_hand += 1
            if self._linger and self._queue.qsize() < self._max_batch:
                await asyncio.sleep(self._linger)
            batch = self._take_batch(first)
            self._in_hand += len(batch) - 1
            data = events_pb2.UsageBatch(events=batch).SerializeToString()
            msg_id = f"{batch[0].request_id}+{len(batch)}"
            headers = {"Nats-Msg-Id": msg_id}
            span = (
                telemetry.start_publish(
                    self._subject, (e.trace_context for e in batch), len(batch), headers
                )
                if telemetry.tracing_enabled()
                else None
            )
            for delay in backoff(first=0.1):
                try:
                    await self._js.publish(self._subject, data, timeout=5.0, headers=headers)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.USAGE_PUBLISH_FAILURES.inc()
                    log.warning("usage publish failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
            if span is not None:
                span.end()
            self._in_hand -= len(batch)
            self.published += len(batch)
            metrics.USAGE_PUBLISHED.inc(len(batch))
            for _ in batch:
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
