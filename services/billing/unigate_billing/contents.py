"""Content logging's storing side: the bodies gateways publish on ``<ns>.content.v1``
(``RequestContent``), written to ``request_contents`` apart from the ledger, and forgotten
after ``ContentLogRetentionDays`` (option; 7 by default).

Core NATS with a queue group, not the usage stream: each message reaches one billing process,
and one lost (no billing running, a restart) is a log detail missing, never a charge. Writes
are batched (whatever arrived meanwhile, one statement), so a burst of logged requests costs
a few statements, not one each."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from unigate import content_log
from unigate.v1 import events_pb2

log = logging.getLogger(__name__)

QUEUE_GROUP = "billing-content"
MAX_PENDING = 5000
BATCH = 200
PRUNE_EVERY_SECONDS = 600.0
DAY_SECONDS = 86_400


class ContentWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[events_pb2.RequestContent] = asyncio.Queue(MAX_PENDING)

    async def subscribe(self, nc: NATS, subject: str) -> None:
        async def on_message(msg: Msg) -> None:
            try:
                content = events_pb2.RequestContent.FromString(msg.data)
            except Exception:
                log.warning("dropped a malformed content message")
                return
            try:
                self._queue.put_nowait(content)
            except asyncio.QueueFull:
                log.warning("content backlog full; dropped %s", content.request_id)

        await nc.subscribe(subject, queue=QUEUE_GROUP, cb=on_message)

    async def run(self) -> None:
        """Write what arrives; prune what is past its retention now and then."""
        next_prune = 0.0
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=PRUNE_EVERY_SECONDS)
                batch = [first]
                while len(batch) < BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._write(batch)
            except TimeoutError:
                pass
            except Exception as exc:  # Postgres away: the batch is lost, the next may land
                log.warning("could not store request contents: %s", exc)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                try:
                    await self.prune()
                except Exception as exc:
                    log.warning("could not prune request contents: %s", exc)

    async def _write(self, batch: list[events_pb2.RequestContent]) -> None:
        await self._pool.executemany(
            "INSERT INTO request_contents (request_id, user_id, token_id, request_body,"
            " response_body, truncated, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (request_id) DO NOTHING",
            [
                (
                    c.request_id,
                    c.user_id,
                    c.token_id,
                    c.request_body.replace("\x00", ""),  # Postgres text holds no NUL
                    c.response_body.replace("\x00", ""),
                    c.truncated,
                    c.created_at,
                )
                for c in batch
            ],
        )

    async def prune(self) -> int:
        raw = await self._pool.fetchval(
            "SELECT value FROM options WHERE key = 'ContentLogRetentionDays'"
        )
        try:
            days = int(raw) if raw else content_log.DEFAULT_RETENTION_DAYS
        except ValueError:
            days = content_log.DEFAULT_RETENTION_DAYS
        cutoff = int(time.time()) - max(days, 0) * DAY_SECONDS
        status: str = await self._pool.execute(
            "DELETE FROM request_contents WHERE created_at < $1", cutoff
        )
        return int(status.rsplit(" ", 1)[-1])
