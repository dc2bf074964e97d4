"""Content logging's sending side: a request's and its answer's bodies, for the keys and
groups content logging is on for (auth says so in ``AuthorizeResponse.log_content``).

Best effort and off the request's path: the bodies are redacted (``unigate.content_log``)
and published on core NATS in a task of their own after the answer is ready, never awaited by
the request, and never on the usage stream: a lost body costs a missing log detail, while
the ledger's exactly-once path neither waits on nor carries it."""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client as NATS

from unigate import content_log
from unigate.v1 import auth_pb2, events_pb2

log = logging.getLogger(__name__)

# Bodies waiting to be sent beyond this are dropped (NATS down, or a burst): memory is bounded.
MAX_IN_FLIGHT = 1000


class ContentPublisher:
    def __init__(self, nc: NATS, subject: str) -> None:
        self._nc = nc
        self._subject = subject
        self._tasks: set[asyncio.Task[None]] = set()

    def capture(
        self,
        auth: auth_pb2.AuthorizeResponse,
        request_id: str,
        api_key: str,
        request_body: bytes,
        response_body: bytes,
    ) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.warning("content logging backlog full; dropped the bodies of %s", request_id)
            return
        task = asyncio.get_running_loop().create_task(
            self._send(auth, request_id, api_key, request_body, response_body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self,
        auth: auth_pb2.AuthorizeResponse,
        request_id: str,
        api_key: str,
        request_body: bytes,
        response_body: bytes,
    ) -> None:
        cap = auth.content_log_max_bytes or content_log.DEFAULT_MAX_BYTES
        try:
            request_text, cut_request = content_log.redact(request_body, api_key, cap)
            response_text, cut_response = content_log.redact(response_body, api_key, cap)
            message = events_pb2.RequestContent(
                request_id=request_id,
                user_id=auth.user_id,
                token_id=auth.token_id,
                request_body=request_text,
                response_body=response_text,
                truncated=cut_request or cut_response,
                created_at=int(time.time()),
            )
            await self._nc.publish(self._subject, message.SerializeToString())
        except Exception as exc:  # best effort: never the request's problem
            log.warning("content logging failed for %s: %s", request_id, exc)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
