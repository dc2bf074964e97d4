"""``unigate user|token quota`` and ``unigate logs list|stats``: the ledger from the command line.

Quota changes go through auth's AdminService (``AUTH_ADDR``, ``AdjustQuota``), log queries
through billing's gRPC service (``BILLING_ADDR``): the same services the management API calls,
as the operator (the ``admin`` certificate, which AdminService takes for root).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import IO, TypeVar

import grpc
from pydantic import Field

from unigate.grpcutil import client_channel
from unigate.settings import CommonSettings
from unigate.v1 import admin_pb2, admin_pb2_grpc, billing_pb2, billing_pb2_grpc

LOG_TYPES = {"topup": 1, "consume": 2, "manage": 3, "system": 4, "test": 5}
GROUP_BY = {
    "total": billing_pb2.STATS_GROUP_BY_NONE,
    "day": billing_pb2.STATS_GROUP_BY_DAY,
    "model": billing_pb2.STATS_GROUP_BY_MODEL,
    "day-model": billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL,
}
RPC_TIMEOUT = 60.0


class CliSettings(CommonSettings):
    billing_addr: str = Field("127.0.0.1:50071", alias="BILLING_ADDR")
    auth_addr: str = Field("127.0.0.1:50051", alias="AUTH_ADDR")


class CliError(Exception):
    """A refusal or failure with a message for the operator (printed, exit status 1)."""


Handler = Callable[[CommonSettings, argparse.Namespace], Coroutine[object, object, None]]


def timestamp(text: str) -> int:
    """Unix seconds, or an ISO date / date-time (UTC unless it names its offset)."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither unix seconds nor an ISO date/time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def log_type(text: str) -> int:
    if text.isdigit() and int(text) in LOG_TYPES.values():
        return int(text)
    if text in LOG_TYPES:
        return LOG_TYPES[text]
    raise argparse.ArgumentTypeError(f"log type is one of {', '.join(LOG_TYPES)} (or 1-5)")


def _id_or_name(text: str) -> tuple[int, str]:
    """Digits are an id, anything else a name."""
    return (int(text), "") if text.isdigit() else (0, text)


def _add_usage_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=timestamp, default=0, help="unix seconds or ISO date/time")
    p.add_argument("--end", type=timestamp, default=0, help="inclusive; unix or ISO")
    p.add_argument("--user", default="", help="user id or username")
    p.add_argument("--token", default="", help="token id or name")
    p.add_argument("--model", default="")
    p.add_argument("--channel", type=int, default=0, help="channel id")


def _usage_filter(args: argparse.Namespace) -> billing_pb2.UsageFilter:
    user_id, username = _id_or_name(args.user)
    token_id, token_name = _id_or_name(args.token)
    return billing_pb2.UsageFilter(
        start_timestamp=args.start,
        end_timestamp=args.end,
        user_id=user_id,
        username=username,
        token_id=token_id,
        token_name=token_name,
        model_name=args.model,
        channel_id=args.channel,
    )


def _log_filter(args: argparse.Namespace) -> billing_pb2.LogFilter:
    u = _usage_filter(args)
    return billing_pb2.LogFilter(
        start_timestamp=u.start_timestamp,
        end_timestamp=u.end_timestamp,
        type=args.type,
        user_id=u.user_id,
        username=u.username,
        token_id=u.token_id,
        token_name=u.token_name,
        model_name=u.model_name,
        channel_id=u.channel_id,
        request_id=args.request_id,
    )


def _cli_settings(settings: CommonSettings) -> CliSettings:
    return settings if isinstance(settings, CliSettings) else CliSettings()


def _addr(settings: CommonSettings, service: str) -> str:
    cli = _cli_settings(settings)
    return cli.auth_addr if service == "auth" else cli.billing_addr


def _channel(settings: CommonSettings, service: str) -> grpc.aio.Channel:
    # The operator's identity: billing lets it read the ledger, not delete it; auth's
    # AdminService takes it for root.
    return client_channel(_addr(settings, service), settings.tls_files("admin"), service)


def _billing_channel(settings: CommonSettings) -> grpc.aio.Channel:
    return _channel(settings, "billing")


def _rpc_error(
    settings: CommonSettings, exc: grpc.aio.AioRpcError, service: str = "billing"
) -> CliError:
    return CliError(f"{service} at {_addr(settings, service)}: {exc.code().name}: {exc.details()}")


T = TypeVar("T")
Stub = TypeVar("Stub")


async def _call(
    settings: CommonSettings,
    service: str,
    stub_of: Callable[[grpc.aio.Channel], Stub],
    call: Callable[[Stub], Awaitable[T]],
) -> T:
    channel = _channel(settings, service)
    try:
        return await call(stub_of(channel))
    except grpc.aio.AioRpcError as exc:
        raise _rpc_error(settings, exc, service) from None
    finally:
        await channel.close()


async def call_billing(
    settings: CommonSettings,
    call: Callable[[billing_pb2_grpc.BillingServiceStub], Awaitable[T]],
) -> T:
    """One call to billing as the operator; a refusal becomes a ``CliError`` naming it."""
    return await _call(settings, "billing", billing_pb2_grpc.BillingServiceStub, call)


async def call_auth(
    settings: CommonSettings,
    call: Callable[[admin_pb2_grpc.AdminServiceStub], Awaitable[T]],
) -> T:
    """One call to auth's AdminService as the operator (root there); a refusal becomes a
    ``CliError`` naming it."""
    return await _call(settings, "auth", admin_pb2_grpc.AdminServiceStub, call)


async def user_id(settings: CommonSettings, username: str) -> int:
    """The id of the user named exactly ``username`` (AdminService's user search)."""
    reply = await call_auth(
        settings,
        lambda stub: stub.ListUsers(
            admin_pb2.ListRequest(keyword=username, size=100), timeout=RPC_TIMEOUT
        ),
    )
    for user in reply.users:
        if user.username == username:
            return user.id
    raise CliError(f"no user named {username!r}")


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _cell(value: object) -> str:
    # Names and content are free text: escape what would break one row per line.
    return str(value).translate(_ESCAPES)


def _time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _export(
    stub: billing_pb2_grpc.BillingServiceStub, f: billing_pb2.LogFilter, out: IO[bytes]
) -> int:
    written = 0
    async for chunk in stub.ExportLogs(billing_pb2.ExportLogsRequest(filter=f), timeout=None):
        out.write(chunk.data)
        written += len(chunk.data)
    return written


async def cmd_logs_list(settings: CommonSettings, args: argparse.Namespace) -> None:
    channel = _billing_channel(settings)
    stub = billing_pb2_grpc.BillingServiceStub(channel)
    try:
        f = _log_filter(args)
        if args.csv:
            if args.csv == "-":
                size = await _export(stub, f, sys.stdout.buffer)
            else:
                # Blocking writes are fine: nothing else runs on this one-shot CLI's loop.
                with Path(args.csv).open("wb") as out:  # noqa: ASYNC230
                    size = await _export(stub, f, out)
            print(f"wrote {size} bytes of CSV to {args.csv}", file=sys.stderr)
            return
        resp = await stub.ListLogs(
            billing_pb2.ListLogsRequest(filter=f, page=args.page, page_size=args.page_size),
            timeout=RPC_TIMEOUT,
        )
    except grpc.aio.AioRpcError as exc:
        raise _rpc_error(settings, exc) from None
    finally:
        await channel.close()
    print(
        "id\ttime\ttype\tuser\ttoken\tchannel\tmodel\tprompt\tcompletion\tquota\tstatus"
        "\trequest_id\tcontent"
    )
    for e in resp.logs:
        cells: tuple[object, ...] = (e.id, _time(e.created_at), e.type, e.username or e.user_id)
        cells += (e.token_name or e.token_id, e.channel_id, e.model, e.prompt_tokens)
        cells += (e.completion_tokens, e.quota, e.status_code, e.request_id, e.content)
        print("\t".join(_cell(c) for c in cells))
    total = f"{resp.total}{'+' if resp.total_capped else ''}"  # counted up to 10,000
    print(f"total {total}; page {resp.page} of size {resp.page_size}", file=sys.stderr)


async def cmd_logs_stats(settings: CommonSettings, args: argparse.Namespace) -> None:
    channel = _billing_channel(settings)
    stub = billing_pb2_grpc.BillingServiceStub(channel)
    try:
        resp = await stub.UsageStats(
            billing_pb2.UsageStatsRequest(filter=_usage_filter(args), group_by=GROUP_BY[args.by]),
            timeout=RPC_TIMEOUT,
        )
    except grpc.aio.AioRpcError as exc:
        raise _rpc_error(settings, exc) from None
    finally:
        await channel.close()
    keys = {"day": ["day"], "model": ["model"], "day-model": ["day", "model"]}.get(args.by, [])
    print("\t".join([*keys, "requests", "prompt_tokens", "completion_tokens", "quota"]))
    for s in [*resp.rows, resp.total]:
        label = {"day": s.day, "model": s.model_name}
        key = [label[k] for k in keys] if s is not resp.total else ["total"] * len(keys)
        print(
            "\t".join(
                [*key, *map(str, (s.requests, s.prompt_tokens, s.completion_tokens, s.quota))]
            )
        )


async def cmd_audit(settings: CommonSettings, args: argparse.Namespace) -> None:
    """Every drift on stdout, one per line with its size; exit status 1 if there is any."""
    channel = _billing_channel(settings)
    stub = billing_pb2_grpc.BillingServiceStub(channel)
    try:
        resp = await stub.Audit(
            billing_pb2.AuditRequest(start_timestamp=args.start, end_timestamp=args.end),
            timeout=RPC_TIMEOUT,
        )
    except grpc.aio.AioRpcError as exc:
        raise _rpc_error(settings, exc) from None
    finally:
        await channel.close()
    if not resp.drifts:
        print(f"no drift ({resp.compared} comparisons)")
        return
    print("check\tsubject\texpected\tactual\tsize")
    for d in resp.drifts:
        print(
            f"{d.check}\t{_cell(d.subject)}\t{d.expected}\t{d.actual}\t{d.actual - d.expected:+d}"
        )
    print(f"{len(resp.drifts)} drift(s) in {resp.compared} comparisons", file=sys.stderr)
    sys.exit(1)


async def _adjust(
    settings: CommonSettings, args: argparse.Namespace, target: str, target_id: int
) -> None:
    if not target_id:
        target_id = await user_id(settings, args.user)
    request = admin_pb2.QuotaAdjustment(target=target, id=target_id, add=args.add, set_to=args.set)
    change = await call_auth(settings, lambda stub: stub.AdjustQuota(request, timeout=RPC_TIMEOUT))
    print(f"{change.before} -> {change.after} ({change.after - change.before:+d})")


async def cmd_user_quota(settings: CommonSettings, args: argparse.Namespace) -> None:
    user_id, _ = _id_or_name(args.user)
    await _adjust(settings, args, "user", user_id)


async def cmd_token_quota(settings: CommonSettings, args: argparse.Namespace) -> None:
    await _adjust(settings, args, "token", args.token)


def _add_quota_change(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--add", type=int, help="quota units to add (negative to deduct)")
    how.add_argument("--set", type=int, help="the new quota")


def add_token_quota(token: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tq = token.add_parser(
        "quota", help="add to or set a key's remaining quota (writes a manage row)"
    )
    tq.add_argument("--token", type=int, required=True, help="token id")
    _add_quota_change(tq)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``user quota`` and ``logs list|stats`` (``token quota`` joins ``token``'s parser)."""
    user = sub.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    uq = user.add_parser(
        "quota", help="add to or set a user's quota (writes a manage row); prints before -> after"
    )
    uq.add_argument("--user", required=True, help="user id or username")
    _add_quota_change(uq)

    logs = sub.add_parser("logs", help="the usage ledger (via billing)").add_subparsers(
        dest="action", required=True
    )
    ls = logs.add_parser("list", help="one page of log rows (newest first), or all as CSV")
    _add_usage_filters(ls)
    ls.add_argument("--type", type=log_type, default=0, help="topup|consume|manage|system|test")
    ls.add_argument("--request-id", default="")
    ls.add_argument("--page", type=int, default=0, help="0-based")
    ls.add_argument("--page-size", type=int, default=50)
    ls.add_argument("--csv", default="", metavar="FILE", help="export every match ('-': stdout)")
    st = logs.add_parser("stats", help="usage totals from the daily rollups")
    _add_usage_filters(st)
    st.add_argument("--by", choices=list(GROUP_BY), default="total")

    audit = sub.add_parser(
        "audit",
        help="reconcile the ledger with balances and rollups, and Redis with Postgres;"
        " prints every drift with its size, exits 1 if there is any",
    )
    audit.add_argument("--start", type=timestamp, default=0, help="unix seconds or ISO date/time")
    audit.add_argument("--end", type=timestamp, default=0, help="inclusive; unix or ISO")


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("user", "quota"): cmd_user_quota,
    ("token", "quota"): cmd_token_quota,
    ("logs", "list"): cmd_logs_list,
    ("logs", "stats"): cmd_logs_stats,
    ("audit", None): cmd_audit,
}
