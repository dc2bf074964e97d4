"""The BillingService gRPC implementation: read side of the ledger, and redemption codes.

The RPCs are thin: filters become SQL in ``logfilter``, the export is ``logexport`` and the
statistics are ``usage_stats``; redemption claims and minting are ``redemptions``. A filter
the caller got wrong, or a code that cannot be redeemed, is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
from nats.js import JetStreamContext

from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate.v1 import billing_pb2, billing_pb2_grpc
from unigate_billing.audit import Auditor
from unigate_billing.logexport import export_csv
from unigate_billing.logfilter import InvalidFilter, Params, log_conditions, where_clause
from unigate_billing.logretention import delete_logs
from unigate_billing.redemptions import RedemptionError, create_redemptions, redeem
from unigate_billing.replay import ReplayError, list_dead_letters, replay
from unigate_billing.usage_stats import usage_stats

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_LOG_COLUMNS = (
    "id, type, coalesce(request_id, '') AS request_id, user_id, username, token_id, token_name,"
    ' channel_id, model_name, upstream_model, endpoint, "group", prompt_tokens,'
    " completion_tokens, cached_tokens, cache_write_tokens, quota, latency_ms, first_token_ms,"
    " is_stream, status_code, error_code, created_at, content, estimated, unit, quantity,"
    " client_request_id"
)
# Content logging's bodies, beside a row (request_contents, by request id).
_CONTENT_COLUMNS = "".join(
    f", coalesce((SELECT c.{body} FROM request_contents c"
    f" WHERE c.request_id = logs.request_id), '') AS {body}"
    for body in ("request_body", "response_body")
)
# A page with bodies stays within gRPC's message limit (unigate.content_log.MAX_MAX_BYTES).
CONTENT_PAGE_SIZE = 10


def _entry(r: asyncpg.Record) -> billing_pb2.LogEntry:
    return billing_pb2.LogEntry(
        id=r["id"],
        type=r["type"],
        request_id=r["request_id"],
        user_id=r["user_id"],
        username=r["username"],
        token_id=r["token_id"],
        token_name=r["token_name"],
        channel_id=r["channel_id"],
        model=r["model_name"],
        upstream_model=r["upstream_model"],
        endpoint=r["endpoint"],
        group=r["group"],
        prompt_tokens=r["prompt_tokens"],
        completion_tokens=r["completion_tokens"],
        cached_tokens=r["cached_tokens"],
        cache_write_tokens=r["cache_write_tokens"],
        quota=r["quota"],
        latency_ms=r["latency_ms"],
        first_token_ms=r["first_token_ms"],
        stream=r["is_stream"],
        status_code=r["status_code"],
        error_code=r["error_code"],
        created_at=r["created_at"],
        content=r["content"],
        estimated=r["estimated"],
        unit=r["unit"],
        quantity=r["quantity"],
        client_request_id=r["client_request_id"],
        request_body=r.get("request_body") or "",
        response_body=r.get("response_body") or "",
    )


async def list_logs(
    pool: asyncpg.Pool, request: billing_pb2.ListLogsRequest
) -> billing_pb2.ListLogsResponse:
    if request.page < 0 or request.page_size < 0:
        raise InvalidFilter("page and page_size cannot be negative")
    p = Params()
    clause = where_clause(log_conditions(p, request.filter))
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    columns = _LOG_COLUMNS
    if request.with_content:
        size = min(size, CONTENT_PAGE_SIZE)
        columns += _CONTENT_COLUMNS
    total = await pool.fetchval(f"SELECT count(*) FROM logs {clause}", *p.values)
    offset = request.page * size
    rows: list[asyncpg.Record] = []
    if offset < total:
        page = Params(list(p.values))
        if offset * 2 <= total:
            rows = await pool.fetch(
                f"SELECT {columns} FROM logs {clause} ORDER BY id DESC"
                f" LIMIT {page.add(size)} OFFSET {page.add(offset)}",
                *page.values,
            )
        else:
            # A page in the older half is read from the oldest end: an OFFSET walks (and
            # discards) every row before the page, and the last page of 10 million rows
            # took seconds from the newest end (bench/ledger.py), milliseconds from here.
            rows = await pool.fetch(
                f"SELECT {columns} FROM logs {clause} ORDER BY id"
                f" LIMIT {page.add(min(size, total - offset))}"
                f" OFFSET {page.add(max(0, total - offset - size))}",
                *page.values,
            )
            rows.reverse()
    return billing_pb2.ListLogsResponse(
        total=total, page=request.page, page_size=size, logs=[_entry(r) for r in rows]
    )


class BillingQueries(billing_pb2_grpc.BillingServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        auditor: Auditor | None = None,
        quota: QuotaStore | None = None,
        usage: tuple[JetStreamContext, Namespace] | None = None,
        *,
        read_pool: asyncpg.Pool | None = None,
    ) -> None:
        self._pool = pool
        # Log pages, statistics and exports read here (a replica when SQL_READ_DSN is set).
        self._read = read_pool or pool
        self._auditor = auditor
        # The Redis balances a redeemed top-up drops from cache (None: no service caches them).
        self._quota = quota
        # Where dead letters are republished: the usage stream of this namespace.
        self._usage = usage

    async def ListDeadLetters(
        self,
        request: billing_pb2.ListDeadLettersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> billing_pb2.ListDeadLettersResponse:
        if request.limit < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "limit cannot be negative")
        letters = await list_dead_letters(
            self._pool, include_replayed=request.include_replayed, limit=request.limit or 100
        )
        return billing_pb2.ListDeadLettersResponse(
            dead_letters=[
                billing_pb2.DeadLetter(
                    id=d.id,
                    subject=d.subject,
                    reason=d.reason,
                    size=d.size,
                    created_at=d.created_at,
                    replayed_at=d.replayed_at or 0,
                )
                for d in letters
            ]
        )

    async def ReplayDeadLetters(
        self,
        request: billing_pb2.ReplayDeadLettersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> billing_pb2.ReplayDeadLettersResponse:
        if self._usage is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this billing cannot replay")
            raise AssertionError("unreachable")
        js, ns = self._usage
        try:
            ids = await replay(self._pool, js, ns, dead_letter_id=request.id or None)
        except ReplayError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return billing_pb2.ReplayDeadLettersResponse(ids=ids)

    async def RedeemCode(
        self, request: billing_pb2.RedeemCodeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.RedeemCodeResponse:
        try:
            amount = await redeem(self._pool, request.code, request.user_id, quota=self._quota)
        except RedemptionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return billing_pb2.RedeemCodeResponse(quota=amount)

    async def CreateRedemptions(
        self,
        request: billing_pb2.CreateRedemptionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> billing_pb2.CreateRedemptionsResponse:
        try:
            codes = await create_redemptions(
                self._pool, request.name, request.quota, request.count, request.created_by
            )
        except RedemptionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return billing_pb2.CreateRedemptionsResponse(codes=codes)

    async def Audit(
        self, request: billing_pb2.AuditRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.AuditResponse:
        if self._auditor is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this billing cannot audit")
            raise AssertionError("unreachable")
        if request.start_timestamp < 0 or request.end_timestamp < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "timestamps cannot be negative")
        return await self._auditor.audit(request)

    async def ListLogs(
        self, request: billing_pb2.ListLogsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.ListLogsResponse:
        try:
            return await list_logs(self._read, request)
        except InvalidFilter as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def ExportLogs(
        self, request: billing_pb2.ExportLogsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[billing_pb2.CsvChunk]:
        try:
            async for data in export_csv(self._read, request.filter):
                yield billing_pb2.CsvChunk(data=data)
        except InvalidFilter as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def DeleteLogs(
        self, request: billing_pb2.DeleteLogsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.DeleteLogsResponse:
        try:
            return await delete_logs(self._pool, request)
        except InvalidFilter as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def UsageStats(
        self, request: billing_pb2.UsageStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.UsageStatsResponse:
        try:
            return await usage_stats(self._read, request)
        except InvalidFilter as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
