"""The relay's own record of each provider call's usage, written next to its reservation.

The gateway publishes a request's usage event after answering, from memory; a gateway killed
in that window (or any time before its batch reached JetStream) takes the event with it. The
relay saw the provider's usage too, so it writes it (a ``RelayUsage``) into the reservation's
Redis hash; billing's sweeper bills an orphaned reservation at that usage instead of the
reserved amount. Settling deletes the hash, record included, so a record lives exactly as
long as it can be needed.

The writes never touch the call's path: a record is queued when the call ends and written
with the others that gathered for ``linger`` seconds, one pipelined round trip per batch (as
the gateway's usage publisher). A record still queued when the relay dies is lost, which
matters only if its gateway dies too.
"""

from __future__ import annotations

import asyncio
import logging

from unigate.quota import QuotaStore, RelayUsageNote
from unigate.v1 import common_pb2, events_pb2, relay_pb2
from unigate_relay.providers.base import has_usage

log = logging.getLogger(__name__)

# After a failed write, the writer waits this long before the next (the queue is bounded).
_RETRY_PAUSE = 1.0


class UsageRecorder:
    def __init__(
        self, quota: QuotaStore, *, linger: float = 0.02, max_batch: int = 512, max_pending: int
    ) -> None:
        self._quota = quota
        self._linger = linger
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: list[RelayUsageNote] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._work())

    def ended(
        self,
        request: relay_pb2.RelayRequest,
        usage: common_pb2.Usage,
        *,
        status: int,
        first_token_ms: int = 0,
        upstream_ms: int = 0,
    ) -> None:
        """A call ended (successfully or not) with this usage."""
        # A failed call that used nothing must not hide what another attempt of the same
        # request recorded; anything with usage replaces it.
        self._queue(
            request,
            events_pb2.RelayUsage(
                request_id=request.request_id,
                channel_id=request.channel_id,
                upstream_model=request.upstream_model,
                usage=usage,
                status_code=status,
                first_token_ms=first_token_ms,
                upstream_ms=upstream_ms,
            ),
            replaces=status < 400 or has_usage(usage),
        )

    def broken_off(self, request: relay_pb2.RelayRequest) -> None:
        """A stream was cancelled before it ended: its usage is unknown."""
        self._queue(
            request,
            events_pb2.RelayUsage(
                request_id=request.request_id,
                channel_id=request.channel_id,
                upstream_model=request.upstream_model,
                incomplete=True,
            ),
            replaces=True,
        )

    def _queue(
        self, request: relay_pb2.RelayRequest, record: events_pb2.RelayUsage, *, replaces: bool
    ) -> None:
        if not request.reservation_id:  # a gateway older than these records
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1  # Redis is away: reported by the writer, not once per call
            return
        self._pending.append(
            RelayUsageNote(
                request.reservation_id,
                record.SerializeToString(),
                replaces,
                request.install,
                request.user_id,
            )
        )
        self._wake.set()

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            if self._linger and not self._closing and len(self._pending) < self._max_batch:
                await asyncio.sleep(self._linger)
            await self.flush()
            if self._closing and not self._pending:
                return

    async def flush(self) -> None:
        """Write up to one batch of what is queued now (one round trip)."""
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if not self._pending:
            self._wake.clear()
        if not batch:
            return
        try:
            await self._quota.note_relay_usage(batch)
            self.written += len(batch)
        except Exception as exc:  # a backup record: never worth holding up the relay for
            log.warning(
                "could not record %d relay usage records (%d dropped before): %s",
                len(batch),
                self.dropped,
                exc,
            )
            if not self._closing:
                await asyncio.sleep(_RETRY_PAUSE)  # not a busy loop while Redis is away

    async def close(self, grace: float = 5.0) -> None:
        """Write what is queued (for up to ``grace`` seconds), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            log.error("%d relay usage records not written at shutdown", len(self._pending))
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
