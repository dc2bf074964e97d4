"""Reconciling the ledger with everything derived from it (``BillingService.Audit``).

Which invariants truly hold, and are checked:

- **Rollups = log rows**: each ``usage_daily`` row equals the totals of the consume rows
  (type 2) of its UTC day, user, key, channel and model (requests, prompt and completion
  tokens, quota), for the days the window touches. Days before the latest ``DeleteLogs`` cutoff
  are skipped: deleting log rows keeps the rollups by design.
- **Used quota = the sum of charges**, all time, from the rollups (which outlive deleted log
  rows): ``tokens.used_quota``, ``users.used_quota`` and ``users.request_count``,
  ``channels.used_quota``; only billing's ledger statement writes them, in the same statement
  as the rollups.
- **Redis = Postgres**: a cached balance (``bal``) equals the balance of record, since billing
  mirrors each charge into it right after committing it (pending charges, still in JetStream,
  are in neither); a difference still there a moment later is a drift. And each cached sum of
  open reservations (``rsvd``) equals the sum of the open reservations it counts.

Not checkable, so not claimed: that a balance equals its opening amount plus top-ups minus
charges. A key's or user's opening quota (set when it was created, or by an admin's edit
through the management API) has no ledger row, so the ledger cannot rebuild a balance; what it
can say about balances is the used side above, and the Redis check catches a balance of record
changed behind the cache's back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate.redisconn import get_many
from unigate.v1 import billing_pb2

# A Redis difference must still be there this much later to count: a charge committed in
# Postgres reaches the cached balance a few milliseconds after.
REDIS_RECHECK_SECONDS = 1.0
DELETE_NOTE = "deleted {n} log rows created before {before}"


@dataclass(frozen=True, slots=True)
class Window:
    first_day: dt.date | None
    last_day: dt.date | None

    @classmethod
    def of(cls, start: int, end: int) -> Window:
        def day(ts: int) -> dt.date | None:
            return dt.datetime.fromtimestamp(ts, dt.UTC).date() if ts > 0 else None

        return cls(day(start), day(end))


def _drift(check: str, subject: str, expected: int, actual: int) -> billing_pb2.Drift:
    return billing_pb2.Drift(check=check, subject=subject, expected=expected, actual=actual)


_DAY_IN_WINDOW = "($1::date IS NULL OR day >= $1) AND ($2::date IS NULL OR day <= $2)"

# (check, table, rollup column, record column): used quota and request counts against the
# rollups, for the owners active on the window's days.
_USED = (
    ("token.used_quota", "tokens", "token_id", "quota", "used_quota"),
    ("user.used_quota", "users", "user_id", "quota", "used_quota"),
    ("user.request_count", "users", "user_id", "requests", "request_count"),
    ("channel.used_quota", "channels", "channel_id", "quota", "used_quota"),
)


class Auditor:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, ns: Namespace) -> None:
        self._pool = pool
        self._redis = redis
        self._ns = ns
        self._quota = QuotaStore(redis, ns)

    async def audit(self, request: billing_pb2.AuditRequest) -> billing_pb2.AuditResponse:
        window = Window.of(request.start_timestamp, request.end_timestamp)
        out = billing_pb2.AuditResponse()
        for check in (self._rollups, self._used, self._redis_balances, self._redis_reserved):
            drifts, compared = await check(window)
            out.drifts.extend(drifts)
            out.compared += compared
        return out

    async def _rollups(self, window: Window) -> tuple[list[billing_pb2.Drift], int]:
        cutoff = await self._pool.fetchval(
            "SELECT max(substring(content from 'created before ([0-9]+)$')::bigint)"
            " FROM logs WHERE type = 4 AND content LIKE 'deleted % log rows created before %'"
        )
        first = window.first_day
        if cutoff:
            # The cutoff's own day lost part of its rows unless it began exactly then.
            kept = dt.datetime.fromtimestamp(cutoff - 1, dt.UTC).date() + dt.timedelta(days=1)
            first = max(first, kept) if first else kept
        rows = await self._pool.fetch(
            f"""
            WITH l AS (
              SELECT date '1970-01-01' + (created_at / 86400)::int AS day, user_id, token_id,
                     channel_id, model_name, count(*) AS requests,
                     sum(prompt_tokens)::bigint AS prompt_tokens,
                     sum(completion_tokens)::bigint AS completion_tokens,
                     sum(quota)::bigint AS quota
                FROM logs
               WHERE type = 2
                 AND ($1::date IS NULL OR created_at >= extract(epoch FROM $1::date)::bigint)
                 AND ($2::date IS NULL
                      OR created_at < extract(epoch FROM $2::date + 1)::bigint)
               GROUP BY 1, 2, 3, 4, 5
            ), r AS (
              SELECT * FROM usage_daily WHERE {_DAY_IN_WINDOW}
            )
            SELECT coalesce(l.day, r.day) AS day, coalesce(l.user_id, r.user_id) AS user_id,
                   coalesce(l.token_id, r.token_id) AS token_id,
                   coalesce(l.channel_id, r.channel_id) AS channel_id,
                   coalesce(l.model_name, r.model_name) AS model_name,
                   coalesce(l.requests, 0) AS l_requests, coalesce(r.requests, 0) AS r_requests,
                   coalesce(l.prompt_tokens, 0) AS l_prompt_tokens,
                   coalesce(r.prompt_tokens, 0) AS r_prompt_tokens,
                   coalesce(l.completion_tokens, 0) AS l_completion_tokens,
                   coalesce(r.completion_tokens, 0) AS r_completion_tokens,
                   coalesce(l.quota, 0) AS l_quota, coalesce(r.quota, 0) AS r_quota
              FROM l FULL JOIN r USING (day, user_id, token_id, channel_id, model_name)
            """,
            first,
            window.last_day,
        )
        drifts = []
        fields = ("requests", "prompt_tokens", "completion_tokens", "quota")
        for r in rows:
            subject = (
                f"{r['day']} user {r['user_id']} token {r['token_id']}"
                f" channel {r['channel_id']} {r['model_name']}"
            )
            for f in fields:
                if r[f"l_{f}"] != r[f"r_{f}"]:
                    drifts.append(_drift(f"usage_daily.{f}", subject, r[f"l_{f}"], r[f"r_{f}"]))
        return drifts, len(rows) * len(fields)

    async def _used(self, window: Window) -> tuple[list[billing_pb2.Drift], int]:
        drifts, compared = [], 0
        for check, table, owner, rolled, recorded in _USED:
            rows = await self._pool.fetch(
                f"""
                WITH active AS (
                  SELECT DISTINCT {owner} AS id FROM usage_daily WHERE {_DAY_IN_WINDOW}
                ), total AS (
                  SELECT {owner} AS id, sum({rolled}) AS n FROM usage_daily GROUP BY 1
                )
                SELECT o.id, o.{recorded} AS actual, coalesce(total.n, 0)::bigint AS expected
                  FROM {table} o LEFT JOIN total ON total.id = o.id
                 WHERE ($1::date IS NULL AND $2::date IS NULL)
                    OR o.id IN (SELECT id FROM active)
                """,
                window.first_day,
                window.last_day,
            )
            compared += len(rows)
            kind = table.rstrip("s")
            drifts += [
                _drift(check, f"{kind} {r['id']}", r["expected"], r["actual"])
                for r in rows
                if r["expected"] != r["actual"]
            ]
        return drifts, compared

    async def _cached(self, kind: str) -> dict[int, int]:
        """Cached balances in Redis by owner id (``kind`` "t" or "u")."""
        keys = [
            k
            async for k in self._redis.scan_iter(
                match=self._ns.redis_key("{g*}", "q", kind, "*", "bal"), count=1000
            )
        ]
        if not keys:
            return {}
        values = await get_many(self._redis, keys)
        out = {}
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                out[int(key.decode().rsplit(":", 2)[-2])] = int(value)
        return out

    async def _balance_differences(self) -> dict[tuple[str, int], tuple[int, int]]:
        found: dict[tuple[str, int], tuple[int, int]] = {}
        for kind, sql in (
            ("t", "SELECT id, remain_quota AS b FROM tokens WHERE id = ANY($1::bigint[])"),
            ("u", "SELECT id, quota AS b FROM users WHERE id = ANY($1::bigint[])"),
        ):
            cached = await self._cached(kind)
            if not cached:
                continue
            recorded = {r["id"]: r["b"] for r in await self._pool.fetch(sql, list(cached))}
            for owner, balance in cached.items():
                if owner in recorded and recorded[owner] != balance:
                    found[(kind, owner)] = (recorded[owner], balance)
        return found

    async def _redis_balances(self, window: Window) -> tuple[list[billing_pb2.Drift], int]:
        first = await self._balance_differences()
        if first:
            await asyncio.sleep(REDIS_RECHECK_SECONDS)
            again = await self._balance_differences()
            first = {k: v for k, v in again.items() if k in first}
        compared = len(await self._cached("t")) + len(await self._cached("u"))
        names = {"t": ("redis.token_balance", "token"), "u": ("redis.user_balance", "user")}
        return [
            _drift(names[kind][0], f"{names[kind][1]} {owner}", expected, actual)
            for (kind, owner), (expected, actual) in sorted(first.items())
        ], compared

    async def _redis_reserved(self, window: Window) -> tuple[list[billing_pb2.Drift], int]:
        """Each cached sum of open reservations against the reservations themselves."""
        for _ in range(3):
            before = await self._reserved_sums()
            open_ = await self._quota.stale_reservations(2**62, limit=1_000_000)
            if await self._reserved_sums() == before:
                break  # no reservation opened or settled while they were read
            await asyncio.sleep(REDIS_RECHECK_SECONDS / 4)
        expected: dict[tuple[str, int], int] = defaultdict(int)
        for r in open_:
            if not r.unlimited:
                expected[("t", r.token_id)] += r.amount
            expected[("u", r.user_id)] += r.amount
        names = {"t": ("redis.token_reserved", "token"), "u": ("redis.user_reserved", "user")}
        drifts = [
            _drift(names[kind][0], f"{names[kind][1]} {owner}", expected.get((kind, owner), 0), n)
            for (kind, owner), n in sorted(before.items())
            if n != expected.get((kind, owner), 0)
        ]
        drifts += [
            _drift(names[kind][0], f"{names[kind][1]} {owner}", n, 0)
            for (kind, owner), n in sorted(expected.items())
            if (kind, owner) not in before
        ]
        return drifts, len(before)

    async def _reserved_sums(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for kind in ("t", "u"):
            keys = [
                k
                async for k in self._redis.scan_iter(
                    match=self._ns.redis_key("{g*}", "q", kind, "*", "rsvd"), count=1000
                )
            ]
            for key, value in zip(keys, await get_many(self._redis, keys), strict=True):
                if value is not None:
                    out[(kind, int(key.decode().rsplit(":", 2)[-2]))] = int(value)
        return out
