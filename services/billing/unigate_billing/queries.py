"""The BillingService gRPC implementation: read side of the ledger, and redemption codes.

The RPCs are thin: filters become SQL in ``logfilter``, log pages are ``logpages``, the export
is ``logexport`` and the statistics are ``usage_stats``; redemption claims and minting are
``redemptions``. A filter the caller got wrong, or a code that cannot be redeemed, is
INVALID_ARGUMENT.
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
from unigate_billing.logfilter import InvalidFilter
from unigate_billing.logpages import list_logs
from unigate_billing.logretention import delete_logs
from unigate_billing.redemptions import RedemptionError, create_redemptions, redeem
from unigate_billing.replay import ReplayError, list_dead_letters, replay
from unigate_billing.usage_stats import usage_stats


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
