"""The durable JetStream consumer that feeds the ledger.

Fetch a batch, apply it in one Postgres transaction, settle the reservations in Redis, then
ack. A crash anywhere before the ack means redelivery, which the ledger makes harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unigate import bus, telemetry
from unigate.namespace import USAGE_SCHEMA_VERSION, Namespace
from unigate.quota import QuotaStore
from unigate.retrying import backoff
from unigate.v1 import events_pb2
from unigate_billing import metrics
from unigate_billing.ledger import Ledger
from unigate_billing.stall import Remedy, StallWatch

log = logging.getLogger(__name__)


def decode(msg: Msg) -> tuple[list[events_pb2.UsageEvent], list[tuple[bytes, str]]]:
    """The events of a message, and those parts (whole message or single events) that can
    never be applied, with the reason."""
    batch = events_pb2.UsageBatch()
    try:
        batch.ParseFromString(msg.data)
    except DecodeError as exc:
        return [], [(msg.data, f"undecodable: {exc}")]
    good, bad = [], []
    for event in batch.events:
        if event.schema_version != USAGE_SCHEMA_VERSION:
            bad.append(
                (event.SerializeToString(), f"unknown schema_version {event.schema_version}")
            )
        elif not event.request_id:
            bad.append((event.SerializeToString(), "missing request_id"))
        else:
            good.append(event)
    if not batch.events:
        bad.append((msg.data, "empty batch"))
    return good, bad


class UsageConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        ns: Namespace,
        ledger: Ledger,
        quota: QuotaStore,
        *,
        batch_size: int,
        ack_wait: float,
        nc: NATS,
        stall_after: float = 10.0,
    ) -> None:
        self._js = js
        self._nc = nc
        self._stall_after = stall_after
        self._ns = ns
        self._ledger = ledger
        self._quota = quota
        self._batch_size = batch_size
        self._ack_wait = ack_wait
        self._stopping = asyncio.Event()
        self.applied = 0
        # Whether the pull subscription is made: until then nothing is consumed, and
        # billing's readiness says so.
        self.subscribed = False

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consumes until ``stop``. Nothing but ``stop`` ends it: a consumer that ended on an
        error would leave billing up and the ledger silently behind."""
        sub = await self._subscribed()
        self.subscribed = sub is not None
        loop = asyncio.get_running_loop()
        watch = StallWatch(self._stall_after, loop.time())
        while sub is not None and not self._stopping.is_set():
            try:
                msgs = await sub.fetch(self._batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                # No events within the fetch window (nats-py raises either kind).
                msgs = []
            except Exception:
                log.exception("fetch failed; retrying")
                await self._pause(0.5)
                msgs = []
            if not msgs:
                if watch.due(loop.time()):
                    sub = await self._look(sub, watch, loop.time())
                continue
            watch.delivered(loop.time())
            try:
                await self._handle(msgs)
            except Exception:
                # An ack lost with the connection, say: what was not acked is redelivered
                # after ack_wait, and the ledger makes a second delivery harmless.
                log.exception("could not finish a batch of %d; it is redelivered", len(msgs))
                await self._pause(0.5)

    async def _subscribed(self) -> JetStreamContext.PullSubscription | None:
        """The pull subscription, tried until it is made (None: stopped first). Looking up or
        creating the durable consumer is a JetStream API call, which times out or is refused
        while a cluster elects leaders: CI saw the one attempt lost with the node that billing
        was talking to, and the consumer end there, billing up and the stream undrained."""
        for delay in backoff():
            if self._stopping.is_set():
                break
            try:
                return await self._subscribe()
            except Exception as exc:
                log.warning("could not subscribe to the usage consumer (%r); retrying", exc)
                await self._pause(delay)
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleeps, but no longer than until ``stop``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._js.pull_subscribe(
            self._ns.usage_subjects,
            durable=self._ns.billing_consumer,
            stream=self._ns.usage_stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait,
                max_ack_pending=max(self._batch_size * 4, 1000),
            ),
        )

    async def _look(
        self, sub: JetStreamContext.PullSubscription, watch: StallWatch, now: float
    ) -> JetStreamContext.PullSubscription:
        """Looks at the consumer's state after a quiet spell; unsticks it if it is stuck
        (``unigate_billing.stall``). Returns the subscription to fetch from next."""
        stream, consumer = self._ns.usage_stream, self._ns.billing_consumer
        try:
            info = await self._js.consumer_info(stream, consumer, timeout=2.0)
        except Exception as exc:
            # NATS is moving, or the consumer has no leader yet: look again later.
            log.warning("could not look at the usage consumer: %r", exc)
            watch.unseen(now)
            return sub
        remedy = watch.judge(now, info)
        if remedy is None:
            return sub
        metrics.CONSUMER_STALLS.labels(remedy.value).inc()
        log.warning(
            "usage consumer stuck: %s pending, delivered up to %s, %s unacknowledged, leader %s;"
            " remedy: %s",
            info.num_pending,
            info.delivered.stream_seq if info.delivered else None,
            info.num_ack_pending,
            info.cluster.leader if info.cluster else None,
            remedy.value,
        )
        try:
            if remedy is Remedy.STEP_DOWN:
                await bus.step_down_consumer(self._nc, stream, consumer)
                return sub
            fresh = await self._subscribe()
            # Replaced either way; a failed unsubscribe leaves an inbox nobody fetches on.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            return fresh
        except Exception:
            log.exception("could not apply %s to the usage consumer", remedy.value)
            return sub

    async def _handle(self, msgs: list[Msg]) -> None:
        events: dict[str, events_pb2.UsageEvent] = {}
        dead: list[tuple[str, bytes, str]] = []
        for msg in msgs:
            good, bad = decode(msg)
            for event in good:
                events.setdefault(event.request_id, event)
            for data, reason in bad:
                log.error("dead-lettering usage data on %s: %s", msg.subject, reason)
                dead.append((msg.subject, data, reason))
        traced = (
            telemetry.ConsumeTrace(
                self._ns.usage_subject,
                (m.headers for m in msgs),
                ((rid, e.trace_context) for rid, e in events.items()),
            )
            # An empty fetch is not a unit of work worth a trace.
            if telemetry.tracing_enabled() and (events or dead)
            else None
        )
        for delay in backoff():
            try:
                with (
                    telemetry.ledger_write(traced, len(events) + len(dead)),
                    metrics.LEDGER_WRITE_SECONDS.time(),
                ):
                    applied = await self._ledger.apply(list(events.values()), dead)
                break
            except Exception:
                if self._stopping.is_set():
                    if traced is not None:
                        traced.finish(set(), outcome="abandoned")
                    return  # unacked: redelivered to whoever consumes next
                log.exception("ledger write failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
        changed = {a.request_id: a for a in applied}
        new = {rid for rid, a in changed.items() if not a.corrected}
        try:
            with telemetry.current(traced.batch if traced else None):
                await self._quota.settle(await self._ledger.settlements(events.values(), changed))
        except Exception:
            # The ledger is already right; cached balances heal when they expire.
            log.exception("could not settle %d events' reservations in redis", len(events))
        for msg in msgs:
            await msg.ack()
        metrics.batch_applied(events.values(), new, len(dead), len(msgs))
        if traced is not None:
            traced.finish(set(new))
        self.applied += len(new)
