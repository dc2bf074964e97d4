"""Has billing applied everything published so far? Asked before a balance read from Postgres
is trusted again after Redis lost its state.

Billing acks a usage message only after its charges are committed to Postgres, so the durable
consumer's ack floor (every stream sequence up to it acked) is billing's applied watermark;
JetStream keeps it, so no process of ours has to. A balance read after the ack floor reached
the stream's last sequence (as it was when the loss was noticed) holds every charge published
before: the charges of requests whose reservations Redis lost cannot be spent again.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from unigate.namespace import Namespace

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


class BacklogPending(Exception):
    """Billing has not applied what was published before now (it may be stopped)."""


class Backlog:
    def __init__(self, js: JetStreamContext, ns: Namespace, wait_seconds: float) -> None:
        self._js = js
        self._ns = ns
        self._wait = wait_seconds
        # One wait at a time per process: concurrent loads after a loss share it.
        self._waiting: asyncio.Task[None] | None = None

    async def applied_floor(self) -> tuple[int, int]:
        """(the stream's last sequence, the billing consumer's ack floor)."""
        try:
            last = (await self._js.stream_info(self._ns.usage_stream)).state.last_seq
        except NotFoundError:
            return 0, 0  # no stream yet: nothing was ever published
        try:
            info = await self._js.consumer_info(self._ns.usage_stream, self._ns.billing_consumer)
        except NotFoundError:
            return last, 0  # billing never ran: nothing applied
        return last, info.ack_floor.stream_seq or 0

    async def wait_applied(self) -> None:
        """Return once billing has applied everything published before this call; raise
        ``BacklogPending`` if it has not within the wait (or NATS cannot say)."""
        if self._waiting is None or self._waiting.done():
            self._waiting = asyncio.create_task(self._wait_applied())
        await asyncio.shield(self._waiting)

    async def _wait_applied(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        try:
            target, floor = await self.applied_floor()
            while floor < target:
                if loop.time() >= deadline:
                    raise BacklogPending(f"billing applied through {floor} of {target}")
                await asyncio.sleep(_POLL_SECONDS)
                _, floor = await self.applied_floor()
        except (nats.errors.Error, TimeoutError) as exc:
            raise BacklogPending(f"usage stream unavailable: {exc!r}") from exc
