"""Logs and usage: ``/api/log/`` (admin: every row; DELETE forgets old rows),
``/api/log/self`` (the caller's own), ``/api/log/search`` and ``/api/log/self/search``
(One API's keyword search: the same rows, ``keyword`` added to the filters),
``/api/log/stat`` and ``/api/log/self/stat`` (One API's totals), and CSV exports of either.
The rows are billing's (``billing.proto``); auth says who the caller is first, and a ``self``
route pins the filter to the caller's user id whatever the query string says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from google.protobuf import empty_pb2

from unigate.v1 import billing_pb2
from unigate_gateway.management.base import (
    ROLE_ADMIN,
    ROLE_ROOT,
    ApiError,
    Caller,
    Reader,
    StubsGetter,
    Writer,
    envelope,
    require_role,
)
from unigate_gateway.management.limits import (
    INT64_MAX,
    Int32Query,
    Int64Query,
    Page,
    Size,
    TextQuery,
)


def log_json(e: billing_pb2.LogEntry) -> dict[str, Any]:
    """A row under One API's names (``model_name``, ``channel``, ``elapsed_time``,
    ``is_stream``), plus what unigate records beyond them."""
    return {
        "id": e.id,
        "type": e.type,
        "created_at": e.created_at,
        "user_id": e.user_id,
        "username": e.username,
        "token_id": e.token_id,
        "token_name": e.token_name,
        "model_name": e.model,
        "upstream_model": e.upstream_model,
        "channel": e.channel_id,
        "quota": e.quota,
        "prompt_tokens": e.prompt_tokens,
        "completion_tokens": e.completion_tokens,
        "cached_tokens": e.cached_tokens,
        "cache_write_tokens": e.cache_write_tokens,
        # Calls billed in another unit than tokens: "second", "character", "image" or
        # "search_unit", and how many.
        "unit": e.unit,
        "quantity": e.quantity,
        "elapsed_time": e.latency_ms,
        "first_token_ms": e.first_token_ms,
        "is_stream": e.stream,
        "status_code": e.status_code,
        "error_code": e.error_code,
        "estimated": e.estimated,
        "request_id": e.request_id,
        "client_request_id": e.client_request_id,
        "endpoint": e.endpoint,
        "group": e.group,
        "content": e.content,
        # Content logging's bodies (only asked for with ?content=true).
        "request_body": e.request_body,
        "response_body": e.response_body,
    }


class LogQuery:
    """One API's log filters, as query parameters."""

    def __init__(
        self,
        type: Int32Query = 0,
        start_timestamp: Int64Query = 0,
        end_timestamp: Int64Query = 0,
        username: TextQuery = "",
        token_name: TextQuery = "",
        model_name: TextQuery = "",
        channel: Int64Query = 0,
        request_id: TextQuery = "",
        keyword: TextQuery = "",
    ) -> None:
        self.type = type
        self.start_timestamp = start_timestamp
        self.end_timestamp = end_timestamp
        self.username = username
        self.token_name = token_name
        self.model_name = model_name
        self.channel = channel
        self.request_id = request_id
        self.keyword = keyword

    def log_filter(self, user_id: int) -> billing_pb2.LogFilter:
        return billing_pb2.LogFilter(
            type=self.type,
            start_timestamp=self.start_timestamp,
            end_timestamp=self.end_timestamp,
            user_id=user_id,
            username="" if user_id else self.username,
            token_name=self.token_name,
            model_name=self.model_name,
            channel_id=self.channel,
            request_id=self.request_id,
            keyword=self.keyword,
        )

    def usage_filter(self, user_id: int) -> billing_pb2.UsageFilter:
        return billing_pb2.UsageFilter(
            start_timestamp=self.start_timestamp,
            end_timestamp=self.end_timestamp,
            user_id=user_id,
            username="" if user_id else self.username,
            token_name=self.token_name,
            model_name=self.model_name,
            channel_id=self.channel,
        )


Filters = Annotated[LogQuery, Depends()]

# A keyset cursor on the wire: a row's "<created_at>_<id>" (billing's LogPosition).
Cursor = Annotated[str, Query(max_length=41, pattern=r"^(-?[0-9]{1,19}_[0-9]{1,19})?$")]


def cursor(e: billing_pb2.LogEntry) -> str:
    return f"{e.created_at}_{e.id}"


def position(text: str) -> billing_pb2.LogPosition:
    created_at, _, row_id = text.partition("_")
    try:
        return billing_pb2.LogPosition(created_at=int(created_at), id=int(row_id))
    except ValueError:  # out of int64 (the pattern has checked the digits)
        raise ApiError(
            400, "a cursor is <created_at>_<id>, as older_than/newer_than were given"
        ) from None


class PageQuery:
    """How a page is chosen: One API's ``p`` (0-based, an offset), or unigate's keyset cursors,
    which cost the same on any page of any table: ``older_than``/``newer_than`` (the answer's
    own ``older_than``/``newer_than``: the next and previous page) or ``oldest=true`` (the last
    page). At most one cursor; with one, ``p`` is ignored."""

    def __init__(
        self,
        p: Page = 0,
        size: Size = 0,
        older_than: Cursor = "",
        newer_than: Cursor = "",
        oldest: bool = False,
    ) -> None:
        self.p, self.size = p, size
        self.older_than, self.newer_than, self.oldest = older_than, newer_than, oldest

    def request(
        self, log_filter: billing_pb2.LogFilter, content: bool
    ) -> billing_pb2.ListLogsRequest:
        r = billing_pb2.ListLogsRequest(
            filter=log_filter,
            page=self.p,
            page_size=self.size,
            with_content=content,
            oldest=self.oldest,
        )
        if self.older_than:
            r.older_than.CopyFrom(position(self.older_than))
        if self.newer_than:
            r.newer_than.CopyFrom(position(self.newer_than))
        return r


Paging = Annotated[PageQuery, Depends()]

# `/api/log/stat?group_by=`: the rollups' dimensions (billing's StatsGroupBy).
_GROUP_BY = {
    "": billing_pb2.STATS_GROUP_BY_NONE,
    "day": billing_pb2.STATS_GROUP_BY_DAY,
    "model": billing_pb2.STATS_GROUP_BY_MODEL,
    "day_model": billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL,
}


def logs_router(stubs: StubsGetter) -> APIRouter:
    router = APIRouter()

    async def scope(caller: Caller, own: bool) -> int:
        """The user id the query is pinned to: the caller's for ``self``, none for admins."""
        s = stubs()
        if own:
            me = await s.admin.GetSelf(
                empty_pb2.Empty(), metadata=caller.metadata, timeout=s.timeout
            )
            return int(me.id)
        await require_role(s, caller, ROLE_ADMIN)
        return 0

    async def listed(
        caller: Caller, own: bool, q: LogQuery, page: PageQuery, content: bool = False
    ) -> dict[str, Any]:
        user_id = await scope(caller, own)
        s = stubs()
        answer = await s.billing.ListLogs(
            page.request(q.log_filter(user_id), content), timeout=s.timeout
        )
        rows = answer.logs
        # Beyond One API's list and total: whether the total is capped ("10000+"), and the
        # cursors of the next and previous pages ("" where there is none).
        return envelope(
            [log_json(e) for e in rows],
            total=answer.total,
            total_capped=answer.total_capped,
            older_than=cursor(rows[-1]) if answer.has_older and rows else "",
            newer_than=cursor(rows[0]) if answer.has_newer and rows else "",
        )

    async def stat(
        caller: Caller, own: bool, q: LogQuery, group_by: TextQuery = ""
    ) -> dict[str, Any]:
        # `group_by` (day, model, day_model; unigate's, for the console's charts) adds `rows`.
        if group_by not in _GROUP_BY:
            raise ApiError(400, "group_by must be one of: day, model, day_model")
        user_id = await scope(caller, own)
        s = stubs()
        answer = await s.billing.UsageStats(
            billing_pb2.UsageStatsRequest(
                filter=q.usage_filter(user_id), group_by=_GROUP_BY[group_by]
            ),
            timeout=s.timeout,
        )
        t = answer.total
        data: dict[str, Any] = {
            "quota": t.quota,
            "requests": t.requests,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
        }
        if group_by:
            data["rows"] = [
                {
                    "day": r.day,
                    "model_name": r.model_name,
                    "requests": r.requests,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "quota": r.quota,
                }
                for r in answer.rows
            ]
        return envelope(data)

    async def export(caller: Caller, own: bool, q: LogQuery) -> StreamingResponse:
        user_id = await scope(caller, own)
        s = stubs()
        call = s.billing.ExportLogs(
            billing_pb2.ExportLogsRequest(filter=q.log_filter(user_id)), timeout=None
        )
        # Read the first chunk before answering, so a refused filter is an error status
        # rather than a 200 with a broken body.
        first = await call.read()

        async def body() -> AsyncIterator[bytes]:
            # read() only: grpc.aio does not allow mixing it with async iteration.
            chunk = first
            while isinstance(chunk, billing_pb2.CsvChunk):
                yield chunk.data
                chunk = await call.read()

        return StreamingResponse(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="logs.csv"'},
        )

    @router.get(
        "/log/",
        tags=["logs"],
        summary="Log rows (admin), newest first; content=true adds the logged bodies",
    )
    async def all_logs(
        caller: Reader, q: Filters, page: Paging, content: bool = False
    ) -> dict[str, Any]:
        return await listed(caller, False, q, page, content)

    @router.delete("/log/", tags=["logs"], summary="Delete rows older than target_timestamp")
    async def delete_logs(
        caller: Writer, target_timestamp: Annotated[int, Query(gt=0, le=INT64_MAX)]
    ) -> dict[str, Any]:
        s = stubs()
        await require_role(s, caller, ROLE_ADMIN)
        answer = await s.billing.DeleteLogs(
            billing_pb2.DeleteLogsRequest(before_timestamp=target_timestamp), timeout=s.timeout
        )
        return envelope(answer.deleted)

    @router.get("/audit", tags=["logs"], summary="Reconcile ledger, balances and Redis (root)")
    async def audit(caller: Reader, start: int = 0, end: int = 0) -> dict[str, Any]:
        s = stubs()
        await require_role(s, caller, ROLE_ROOT)
        if start < 0 or end < 0:
            raise ApiError(400, "start and end are unix seconds (0: unbounded)")
        answer = await s.billing.Audit(
            billing_pb2.AuditRequest(start_timestamp=start, end_timestamp=end), timeout=s.timeout
        )
        drifts = [
            {
                "check": d.check,
                "subject": d.subject,
                "expected": d.expected,
                "actual": d.actual,
                "size": d.actual - d.expected,
            }
            for d in answer.drifts
        ]
        return envelope({"drifts": drifts, "compared": answer.compared})

    @router.get(
        "/log/search",
        tags=["logs"],
        summary="Search log rows (admin): keyword = content prefix, model, request id or type",
    )
    async def search_logs(caller: Reader, q: Filters, page: Paging) -> dict[str, Any]:
        return await listed(caller, False, q, page)

    @router.get("/log/self/search", tags=["logs"], summary="Search the caller's own log rows")
    async def search_own_logs(caller: Reader, q: Filters, page: Paging) -> dict[str, Any]:
        return await listed(caller, True, q, page)

    @router.get(
        "/log/self",
        tags=["logs"],
        summary="The caller's own log rows; content=true adds the logged bodies",
    )
    async def own_logs(
        caller: Reader, q: Filters, page: Paging, content: bool = False
    ) -> dict[str, Any]:
        return await listed(caller, True, q, page, content)

    @router.get("/log/stat", tags=["logs"], summary="Usage totals (admin)")
    async def all_stat(caller: Reader, q: Filters, group_by: TextQuery = "") -> dict[str, Any]:
        return await stat(caller, False, q, group_by)

    @router.get("/log/self/stat", tags=["logs"], summary="The caller's usage totals")
    async def own_stat(caller: Reader, q: Filters, group_by: TextQuery = "") -> dict[str, Any]:
        return await stat(caller, True, q, group_by)

    @router.get("/log/export", tags=["logs"], summary="Log rows as CSV (admin)")
    async def all_export(caller: Reader, q: Filters) -> StreamingResponse:
        return await export(caller, False, q)

    @router.get("/log/self/export", tags=["logs"], summary="The caller's log rows as CSV")
    async def own_export(caller: Reader, q: Filters) -> StreamingResponse:
        return await export(caller, True, q)

    return router
