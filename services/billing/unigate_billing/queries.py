"""The BillingService gRPC implementation: read side of the ledger."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc

from unigate.v1 import billing_pb2, billing_pb2_grpc

MAX_PAGE_SIZE = 1000


class BillingQueries(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ListLogs(
        self, request: billing_pb2.ListLogsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_pb2.ListLogsResponse:
        where, args = [], []
        for column, value in (
            ("user_id", request.user_id),
            ("token_id", request.token_id),
            ("model_name", request.model),
            ("channel_id", request.channel_id),
            ("type", request.type),
        ):
            if value:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if request.start_time:
            args.append(request.start_time)
            where.append(f"created_at >= ${len(args)}")
        if request.end_time:
            args.append(request.end_time)
            where.append(f"created_at <= ${len(args)}")
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        size = min(max(request.page_size or 50, 1), MAX_PAGE_SIZE)
        offset = max(request.page, 0) * size
        total = await self._pool.fetchval(f"SELECT count(*) FROM logs {clause}", *args)
        rows = await self._pool.fetch(
            "SELECT id, type, coalesce(request_id, '') AS request_id, user_id, token_id,"
            " token_name, channel_id, model_name, upstream_model, prompt_tokens,"
            " completion_tokens, cached_tokens, quota, latency_ms, first_token_ms, is_stream,"
            " status_code, created_at, content, estimated"
            f" FROM logs {clause} ORDER BY id DESC LIMIT {size} OFFSET {offset}",
            *args,
        )
        return billing_pb2.ListLogsResponse(
            total=total,
            logs=[
                billing_pb2.LogEntry(
                    id=r["id"],
                    type=r["type"],
                    request_id=r["request_id"],
                    user_id=r["user_id"],
                    token_id=r["token_id"],
                    token_name=r["token_name"],
                    channel_id=r["channel_id"],
                    model=r["model_name"],
                    upstream_model=r["upstream_model"],
                    prompt_tokens=r["prompt_tokens"],
                    completion_tokens=r["completion_tokens"],
                    cached_tokens=r["cached_tokens"],
                    quota=r["quota"],
                    latency_ms=r["latency_ms"],
                    first_token_ms=r["first_token_ms"],
                    stream=r["is_stream"],
                    status_code=r["status_code"],
                    created_at=r["created_at"],
                    content=r["content"],
                    estimated=r["estimated"],
                )
                for r in rows
            ],
        )
