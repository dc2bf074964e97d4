"""Anthropic's Message Batches through the gateway (``AuthService.MessageBatchCall``).

A batch is bound to the user whose key created it (anyone else's key finds nothing: 404, as
for an unknown id) and to the channel and channel key it was created on (later calls on it go
there). Its billing:

* **Before the work.** The key is checked as for any call (status, expiry, subnet) and so is
  every model of the batch (the key's model list, a route to it); one Anthropic channel must
  serve them all. Each request is priced at the batch price (``pricing.batch_price``: the
  ``MessageBatchRatio`` option, default Anthropic's 50 %), and its share is what a Messages
  call of the same prompt and ``max_tokens`` would reserve (``reservation.plan``; the
  ``max_tokens`` sent upstream is lowered to what the share covers). The whole batch is
  reserved at once, all or nothing, before the provider is called: a balance that cannot
  cover it is refused 403 (``billing_error``). The reservation names ``BATCH_HOLDER`` as its
  gateway, so billing's sweeper leaves it alone while the batch runs.
* **Each result once.** When the batch has ended (a client retrieving it or fetching its
  results, or the poller below), its results file is read (the relay parses each line's
  usage) and each request gets one ledger row: request id ``derived_request_id(batch's
  creation ms, batch id, custom_id)``, so the row's time and key are the same whoever writes
  it and however often, and the ledger's unique key absorbs every repeat. Succeeded results
  cost their usage at the batch price; errored, canceled and expired ones (and a request the
  file lacks) cost 0, with their status. The batch's reservation is split into one
  reservation per result (``QuotaStore.split_batch``: atomic, once per result, the rest
  released when the last is split off), each carrying its usage as a relay record; the rows
  go to billing as usage events, whose settlement releases each share exactly once. A crash
  after the split leaves reservations the sweeper bills at that usage; one before it leaves
  the batch unbilled, and the next look bills it.
* **Never fetched.** ``BatchPoller`` (one auth at a time, by a Redis lease) looks at every
  unbilled batch every ``MESSAGE_BATCH_POLL`` seconds through the relay, and bills those that
  ended. A creation left half-way (auth died between the provider's answer and recording
  it) is adopted from the channel's batch list when exactly one unknown batch of its size
  was created then, else its reservation is released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import orjson
from nats.js import JetStreamContext

from unigate import errors, reservation
from unigate.anthropic_errors import status_of_type
from unigate.channel_types import channel_type
from unigate.charge import price_of, quota_of
from unigate.namespace import USAGE_SCHEMA_VERSION, Namespace
from unigate.quota import BatchShare, QuotaStore, Settlement
from unigate.request_ids import arrived_ms, derived_request_id
from unigate.routing import Ability
from unigate.settings import relay_for
from unigate.v1 import auth_pb2, common_pb2, events_pb2, relay_pb2, relay_pb2_grpc
from unigate_auth.batch_store import (
    BILLED,
    CREATING,
    FAILED,
    BatchItem,
    BatchRecord,
    BatchStore,
)
from unigate_auth.store import TokenRecord

log = logging.getLogger(__name__)

#: The endpoint a batch result's ledger row names.
ENDPOINT = "messages.batches"
_PATH = "/v1/messages/batches"
_FAMILY = "anthropic"
# A result's row: the status it stands for and its error code, by result type.
_OUTCOMES: dict[str, tuple[int, str]] = {
    "succeeded": (200, ""),
    "canceled": (499, "batch_canceled"),
    "expired": (408, "batch_expired"),
}
_MISSING = (502, "batch_result_missing")
# Usage events per published message (as the gateway's publisher packs them).
_EVENTS_PER_MESSAGE = 256
# Failures of a call that never left for the provider (the rest may have reached it).
_NEVER_SENT = frozenset(
    {"batch_channel_gone", "relay_missing", "relay_misrouted", "channel_gone", "batch_key_gone"}
)
# A creation still unrecorded after this long was cut off half-way.
CREATE_GRACE_MS = 120_000


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def _not_found(batch_id: str) -> errors.ClientFacingError:
    return errors.NotFound(f"Message Batch {batch_id} not found.", code="batch_not_found")


def result_row(
    record: BatchRecord, item: BatchItem, line: relay_pb2.BatchResultLine | None
) -> tuple[events_pb2.UsageEvent, BatchShare]:
    """The usage event of one result, and its share of the batch's reservation (carrying what
    the sweeper would bill it at, should the event never be published)."""
    rid = derived_request_id(record.created_ms, record.batch_id, item.custom_id)
    pricing = record.pricing[item.model]
    usage = common_pb2.Usage()
    if line is None:
        status, code = _MISSING
    elif line.type == "errored":
        status, code = status_of_type(line.error_type), "batch_errored"
    else:
        status, code = _OUTCOMES.get(line.type, _MISSING)
    if line is not None and line.type == "succeeded":
        usage.CopyFrom(line.usage)
    quota = quota_of(pricing, usage) if status == 200 else 0
    event = events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=rid,
        reservation_id=rid,
        reserved_quota=item.share,
        user_id=record.user_id,
        token_id=record.token_id,
        token_name=record.token_name,
        group=record.group,
        channel_id=record.channel_id,
        model=item.model,
        upstream_model=item.upstream_model,
        endpoint=ENDPOINT,
        usage=usage,
        pricing=pricing,
        quota=quota,
        status_code=status,
        error_code=code,
        client_ip=record.client_ip,
        channels_tried=[record.channel_id],
        created_at_ms=record.created_ms,
        # The client's own name for the request: /api/log finds a result's row by it.
        client_request_id=item.custom_id,
    )
    context = events_pb2.ReservationContext(
        request_id=rid,
        token_name=record.token_name,
        group=record.group,
        model=item.model,
        endpoint=ENDPOINT,
        client_ip=record.client_ip,
        pricing=pricing,
    )
    relay_usage = events_pb2.RelayUsage(
        request_id=rid,
        channel_id=record.channel_id,
        upstream_model=item.upstream_model,
        usage=usage,
        status_code=status,
    )
    share = BatchShare(
        item.custom_id,
        rid,
        item.share,
        context.SerializeToString(),
        relay_usage.SerializeToString(),
    )
    return event, share


def _loads(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _ended(obj: dict[str, Any] | None) -> bool:
    return obj is not None and obj.get("processing_status") == "ended"


class MessageBatches:
    def __init__(
        self,
        *,
        store: BatchStore,
        quota: QuotaStore,
        relays: dict[str, relay_pb2_grpc.RelayServiceStub],
        js: JetStreamContext,
        ns: Namespace,
        check_key: Callable[[str, str], Awaitable[TokenRecord]],
        routes: Callable[[TokenRecord, str], Awaitable[list[Ability]]],
        prices: Callable[[TokenRecord, str], Awaitable[auth_pb2.Pricing]],
        reserve: Callable[[TokenRecord, str, int, bytes], Awaitable[int]],
        channel_row: Callable[[int], Awaitable[Any]],
        ceiling: Callable[[], Awaitable[int]],
        default_completion: int,
        relay_timeout: float = 60.0,
    ) -> None:
        self._store = store
        self._quota = quota
        self._relays = relays
        self._js = js
        self._ns = ns
        self._check_key = check_key
        self._routes = routes
        self._prices = prices
        self._reserve = reserve
        self._channel_row = channel_row
        self._ceiling = ceiling
        self._default_completion = default_completion
        self._relay_timeout = relay_timeout

    # ---- the gateway's calls ------------------------------------------------------------
    async def call(self, req: auth_pb2.MessageBatchRequest) -> auth_pb2.MessageBatchReply:
        try:
            token = await self._check_key(req.api_key, req.client_ip)
            if req.op == "create":
                answer = await self._create(req, token)
            elif req.op == "list":
                answer = await self._list(req, token)
            else:
                record = await self._store.owned(req.batch_id, token.user_id)
                if record is None:
                    raise _not_found(req.batch_id)
                answer = await self._on(record, req.op)
        except errors.ClientFacingError as err:
            return auth_pb2.MessageBatchReply(allowed=False, error=err.to_proto())
        return auth_pb2.MessageBatchReply(
            allowed=True,
            http_status=answer.status,
            body=answer.body,
            content_type=answer.content_type,
        )

    async def _create(self, req: auth_pb2.MessageBatchRequest, token: TokenRecord) -> Answer:
        if not req.items:
            raise errors.InvalidRequest("requests: List should have at least 1 item")
        channel, upstream = await self._channel_for(token, {i.model for i in req.items})
        ceiling = await self._ceiling()
        pricing: dict[str, auth_pb2.Pricing] = {}
        for model in upstream:
            pricing[model] = await self._prices(token, model)
        items: list[BatchItem] = []
        bounds: list[int] = []
        for item in req.items:
            plan = reservation.plan(
                price_of(pricing[item.model]),
                auth_pb2.AuthorizeRequest(
                    model=item.model,
                    endpoint="messages",
                    estimated_prompt_tokens=item.estimated_prompt_tokens,
                    max_tokens=item.max_tokens,
                    long_cache_writes=item.long_cache_writes,
                ),
                ceiling=ceiling,
                default_completion=self._default_completion,
                upstream_models=[upstream[item.model]],
            )
            items.append(BatchItem(item.custom_id, item.model, upstream[item.model], plan.amount))
            bounds.append(plan.bound(price_of(pricing[item.model]), plan.amount))
        body = self._upstream_body(req.body, upstream, bounds)
        total = sum(i.share for i in items)
        created_ms = arrived_ms(req.request_id) or int(time.time() * 1000)
        context = events_pb2.ReservationContext(
            request_id=req.request_id,
            token_name=token.name,
            group=token.group,
            model=req.items[0].model,
            endpoint=ENDPOINT,
            client_ip=req.client_ip,
        ).SerializeToString()
        # All or nothing, before the provider hears of it.
        await self._reserve(token, req.request_id, total, context)
        record = BatchRecord(
            reservation_id=req.request_id,
            batch_id="",
            user_id=token.user_id,
            token_id=token.id,
            token_name=token.name,
            group=token.group,
            client_ip=req.client_ip,
            unlimited=token.unlimited_quota,
            channel_id=channel.channel_id,
            key_fingerprint="",
            created_ms=created_ms,
            reserved_quota=total,
            items=tuple(items),
            pricing=pricing,
            state=CREATING,
            object=None,
        )
        try:
            await self._store.begin(record)
        except BaseException:
            await self._release(record, recorded=False)
            raise
        try:
            result = await self._relay(record, "POST", _PATH, body)
        except errors.ClientFacingError as err:
            if err.code in _NEVER_SENT:
                await self._release(record)
            # Otherwise the provider may have taken the batch (a timeout, a relay gone
            # mid-call): the record stays `creating`, and the poller adopts the batch or
            # releases the reservation.
            raise
        obj = _loads(result.body) if result.http_status == 200 else None
        if obj is None or not isinstance(obj.get("id"), str):
            await self._release(record)
            return self._upstream_answer(result)
        await self._store.opened(record.reservation_id, obj["id"], result.key_fingerprint, obj)
        return Answer(200, result.body)

    def _upstream_body(self, body: bytes, upstream: dict[str, str], bounds: list[int]) -> bytes:
        """The client's body with each request's model as the channel calls it and its
        ``max_tokens`` no higher than its share of the reservation covers."""
        data = orjson.loads(body)
        for request, bound in zip(data["requests"], bounds, strict=True):
            params = request["params"]
            params["model"] = upstream[params["model"]]
            if bound > 0:
                params["max_tokens"] = min(int(params["max_tokens"]), bound)
        return orjson.dumps(data)

    async def _channel_for(
        self, token: TokenRecord, models: Iterable[str]
    ) -> tuple[Ability, dict[str, str]]:
        """The Anthropic channel that serves every model of the batch (the first model's
        routing order decides among several), and what it calls each model."""
        served: dict[int, dict[str, str]] = {}
        order: list[Ability] = []
        ordered_models = sorted(models)
        for n, model in enumerate(ordered_models):
            for a in await self._routes(token, model):
                ct = channel_type(a.channel_type)
                if ct is not None and ct.family == _FAMILY:
                    served.setdefault(a.channel_id, {})[model] = a.upstream_model
                    if n == 0:
                        order.append(a)
        order.sort(key=lambda a: -a.priority)
        for a in order:
            if len(served[a.channel_id]) == len(ordered_models):
                return a, served[a.channel_id]
        raise errors.InvalidRequest(
            "No Anthropic channel serves every model of this batch; a Message Batch runs on"
            " one Anthropic channel.",
            code="batch_channel_not_found",
        )

    async def _list(self, req: auth_pb2.MessageBatchRequest, token: TokenRecord) -> Answer:
        limit = req.limit or 20
        if not 1 <= limit <= 1000:
            raise errors.InvalidRequest("limit: Input should be between 1 and 1000")
        page = await self._store.page(token.user_id, limit, req.before_id, req.after_id)
        if page is None:
            raise errors.InvalidRequest("The cursor names no Message Batch of yours.")
        records, more = page
        data = []
        for record in records:
            obj = record.object
            if record.state not in (BILLED, FAILED) and not _ended(obj):
                # Still running: as it stands now (a provider hiccup shows the last known).
                try:
                    answer = await self._on(record, "retrieve")
                    obj = _loads(answer.body) if answer.status == 200 else obj
                except errors.ClientFacingError:
                    pass
            data.append(obj)
        body = {
            "data": data,
            "has_more": more,
            "first_id": records[0].batch_id if records else None,
            "last_id": records[-1].batch_id if records else None,
        }
        return Answer(200, orjson.dumps(body))

    async def _on(self, record: BatchRecord, op: str) -> Answer:
        path = f"{_PATH}/{record.batch_id}"
        if op == "retrieve":
            result = await self._relay(record, "GET", path)
            obj = _loads(result.body) if result.http_status == 200 else None
            if obj is not None:
                await self._store.save_object(record.reservation_id, obj)
                if _ended(obj) and record.state != BILLED:
                    await self.bill(record)
        elif op == "cancel":
            result = await self._relay(record, "POST", path + "/cancel")
            obj = _loads(result.body) if result.http_status == 200 else None
            if obj is not None:
                await self._store.save_object(record.reservation_id, obj)
        elif op == "results":
            result = await self._relay(record, "GET", path + "/results", parse=True)
            if result.http_status == 200 and record.state != BILLED:
                await self._bill_lines(record, result.results)
        elif op == "delete":
            if record.state != BILLED and _ended(record.object):
                # Its results first: once deleted upstream they are gone.
                await self.bill(record)
            result = await self._relay(record, "DELETE", path)
            if result.http_status == 200:
                await self._store.mark_deleted(record.reservation_id)
        else:
            raise errors.InvalidRequest(f"Unknown Message Batches operation {op!r}.")
        return self._upstream_answer(result)

    def _upstream_answer(self, result: relay_pb2.BatchUpstreamResult) -> Answer:
        if result.http_status in (401, 403):
            # The channel's credentials, not the client's: never the client's 401/403.
            raise errors.UpstreamError("The provider refused the channel's credentials.")
        return Answer(result.http_status, result.body, result.content_type or "application/json")

    # ---- billing ------------------------------------------------------------------------
    async def bill(self, record: BatchRecord) -> bool:
        """Bill an ended batch's results (once, whoever asks and however often)."""
        result = await self._relay(record, "GET", f"{_PATH}/{record.batch_id}/results", parse=True)
        if result.http_status != 200:
            log.warning(
                "results of batch %s unavailable (%d); billing later",
                record.batch_id,
                result.http_status,
            )
            return False
        await self._bill_lines(record, result.results)
        return True

    async def _bill_lines(
        self, record: BatchRecord, lines: Iterable[relay_pb2.BatchResultLine]
    ) -> None:
        by_id = {line.custom_id: line for line in lines}
        rows = [result_row(record, item, by_id.get(item.custom_id)) for item in record.items]
        await self._quota.split_batch(
            reservation_id=record.reservation_id,
            token_id=record.token_id,
            user_id=record.user_id,
            requests=len(record.items),
            shares=[share for _, share in rows],
            now_ms=int(time.time() * 1000),
        )
        events = [event for event, _ in rows]
        for start in range(0, len(events), _EVENTS_PER_MESSAGE):
            chunk = events[start : start + _EVENTS_PER_MESSAGE]
            data = events_pb2.UsageBatch(events=chunk).SerializeToString()
            # Deterministic: a second billing of the same results is dropped by JetStream
            # within its window, and by the ledger's unique key after it.
            headers = {"Nats-Msg-Id": f"{chunk[0].request_id}+{len(chunk)}"}
            await self._js.publish(self._ns.usage_subject, data, timeout=10.0, headers=headers)
        await self._store.set_state(record.reservation_id, BILLED)
        log.info("billed %d results of batch %s", len(events), record.batch_id)

    async def _release(self, record: BatchRecord, *, recorded: bool = True) -> None:
        """A batch the provider never took: its whole reservation goes back, once."""
        await self._quota.settle(
            [
                Settlement(
                    reservation_id=record.reservation_id,
                    token_id=record.token_id,
                    user_id=record.user_id,
                    charged=0,
                    unlimited=record.unlimited,
                )
            ]
        )
        if recorded:
            await self._store.set_state(record.reservation_id, FAILED)

    # ---- upstream -----------------------------------------------------------------------
    async def _relay(
        self, record: BatchRecord, method: str, path: str, body: bytes = b"", parse: bool = False
    ) -> relay_pb2.BatchUpstreamResult:
        row = await self._channel_row(record.channel_id)
        if row is None:
            raise errors.ServiceUnavailable(
                "The channel this Message Batch was created on no longer exists.",
                code="batch_channel_gone",
            )
        relay = relay_for(self._relays, _FAMILY)
        if relay is None:
            raise errors.ServiceUnavailable(
                "No relay serves Anthropic channels.", code="relay_missing"
            )
        request = relay_pb2.BatchUpstreamRequest(
            request_id=record.reservation_id,
            channel_id=record.channel_id,
            channel_type=row["type"],
            config_version=row["config_version"],
            method=method,
            path=path,
            body=body,
            parse_results=parse,
            key_fingerprint=record.key_fingerprint,
        )
        try:
            result = await relay.MessageBatch(request, timeout=self._relay_timeout)
        except grpc.aio.AioRpcError as exc:
            log.error("relay batch call failed: %s %s", exc.code(), exc.details())
            raise errors.ServiceUnavailable("The relay for this channel is unavailable.") from None
        if result.HasField("error"):
            raise errors.ClientFacingError.from_proto(result.error.error)
        return result

    # ---- the poller's rounds ------------------------------------------------------------
    async def poll_once(self, min_age_ms: int) -> int:
        """Look at each unbilled batch not looked at for ``min_age_ms``; bill those that
        ended; settle creations cut off half-way. Returns how many were billed."""
        now = int(time.time() * 1000)
        billed = 0
        for record in await self._store.unbilled(now - min_age_ms):
            try:
                if record.state == CREATING:
                    if now - record.created_ms >= CREATE_GRACE_MS:
                        await self._recover_creation(record)
                    else:
                        # Looked at: to the back of the queue, behind batches to poll.
                        await self._store.touch(record.reservation_id)
                    continue
                result = await self._relay(record, "GET", f"{_PATH}/{record.batch_id}")
                obj = _loads(result.body) if result.http_status == 200 else None
                if obj is not None:
                    await self._store.save_object(record.reservation_id, obj)
                if _ended(obj) and await self.bill(record):
                    billed += 1
                elif obj is None:
                    await self._store.touch(record.reservation_id)
            except errors.ClientFacingError as err:
                log.warning("batch %s: %s", record.batch_id or record.reservation_id, err)
                await self._store.touch(record.reservation_id)
        return billed

    async def _recover_creation(self, record: BatchRecord) -> None:
        """Auth died between the provider's answer and recording it: adopt the one unknown
        batch of this size the channel's key created then, or else release the reservation
        (the provider never took it)."""
        result = await self._relay(record, "GET", f"{_PATH}?limit=100")
        page = _loads(result.body) if result.http_status == 200 else None
        if page is None:
            await self._store.touch(record.reservation_id)
            return
        candidates = []
        for obj in page.get("data") or []:
            counts = obj.get("request_counts") or {}
            if sum(int(v) for v in counts.values()) != len(record.items):
                continue
            created = _rfc3339_ms(str(obj.get("created_at", "")))
            if created is None or not 0 <= created - record.created_ms <= CREATE_GRACE_MS:
                continue
            if await self._store.known(str(obj.get("id"))):
                continue
            candidates.append(obj)
        if len(candidates) == 1:
            obj = candidates[0]
            log.warning("adopting batch %s, whose creation was cut off", obj["id"])
            await self._store.opened(record.reservation_id, obj["id"], "", obj)
        elif not candidates:
            log.warning("batch creation %s never reached the provider", record.reservation_id)
            await self._release(record)
        else:
            log.error(
                "batch creation %s: %d candidates; left for an operator",
                record.reservation_id,
                len(candidates),
            )
            await self._store.touch(record.reservation_id)


def _rfc3339_ms(text: str) -> int | None:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class BatchPoller:
    """Bills batches whose results no client fetched: one auth process at a time (a Redis
    lease), every ``interval`` seconds."""

    def __init__(self, batches: MessageBatches, quota: QuotaStore, interval: float) -> None:
        self._batches = batches
        self._quota = quota
        self._interval = interval
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                lease_ms = int(self._interval * 3000)
                if await self._quota.try_lead("message-batches", self._owner, lease_ms):
                    await self._batches.poll_once(int(self._interval * 1000))
            except Exception:
                log.exception("message batch poll failed; will retry")
