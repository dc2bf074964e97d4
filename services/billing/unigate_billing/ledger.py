"""Writing the ledger: one set-based statement per batch of usage events.

A log row is inserted once per request id; only rows actually inserted charge the token,
the user and the channel and are added to the daily rollups (``usage_daily``), all in the same
statement, so a redelivered event changes nothing.

One exception: a row the reservation sweeper wrote (``settled_by_sweeper`` at the reserved
amount, or ``settled_from_relay_usage`` at the usage the relay recorded: the request's own
event was late, say behind a long NATS outage) is replaced by the real event when it arrives,
once, and the charges and rollups move by the difference in the same statement. The ledger
then says what the provider really did, not what was reserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import asyncpg

from unigate.quota import Settlement
from unigate.request_ids import arrived_ms
from unigate.v1 import events_pb2

LOG_TYPE_CONSUME = 2

_APPLY = """
WITH ev AS (
  SELECT * FROM unnest(
    $1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
    $13::bigint[], $14::bool[], $15::bigint[], $16::float8[], $17::float8[], $18::float8[],
    $19::float8[], $20::int[], $21::int[], $22::bool[], $23::int[], $24::text[], $25::text[],
    $26::text[], $27::bigint[], $28::text[], $29::bigint[], $30::text[], $31::bigint[],
    $32::text[], $33::text[]
  ) WITH ORDINALITY AS e(request_id, created_at, user_id, token_id, token_name, channel_id,
         model_name, upstream_model, endpoint, grp, prompt_tokens, completion_tokens,
         cached_tokens, estimated, quota, model_ratio, completion_ratio, group_ratio,
         cached_ratio, latency_ms, first_token_ms, is_stream, status_code, error_code, client_ip,
         reservation_id, reserved_quota, channels_tried, cache_write_tokens, unit, quantity,
         unit_price, client_request_id, ord)
), ins AS (
  INSERT INTO logs (request_id, type, created_at, user_id, username, token_id, token_name,
                    channel_id, channels_tried, model_name, upstream_model, endpoint, "group",
                    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
                    estimated, quota, model_ratio, completion_ratio, group_ratio, cached_ratio,
                    latency_ms, first_token_ms, is_stream, status_code, error_code, client_ip,
                    reservation_id, reserved_quota, unit, quantity, unit_price,
                    client_request_id)
  SELECT e.request_id, 2, e.created_at, e.user_id, coalesce(u.username, ''), e.token_id,
         e.token_name, e.channel_id, e.channels_tried::bigint[], e.model_name, e.upstream_model,
         e.endpoint, e.grp, e.prompt_tokens, e.completion_tokens, e.cached_tokens,
         e.cache_write_tokens, e.estimated, e.quota, e.model_ratio, e.completion_ratio,
         e.group_ratio, e.cached_ratio, e.latency_ms, e.first_token_ms, e.is_stream,
         e.status_code, e.error_code, e.client_ip, e.reservation_id, e.reserved_quota, e.unit,
         e.quantity, e.unit_price, e.client_request_id
  FROM ev e LEFT JOIN users u ON u.id = e.user_id
  -- Log ids follow the batch, which is in the order the requests ended.
  ORDER BY e.ord
  ON CONFLICT (request_id, type, created_at) DO NOTHING
  RETURNING request_id, created_at, user_id, token_id, channel_id, model_name, prompt_tokens,
            completion_tokens, quota
), swept AS (
  -- Rows the sweeper settled at the reserved amount, whose real event is in this batch.
  SELECT l.id, l.request_id, l.created_at, l.user_id, l.token_id, l.channel_id, l.model_name,
         l.prompt_tokens, l.completion_tokens, l.quota
    -- The row's time comes from its request id whoever wrote it (request_ids.arrived_ms):
    -- this finds it in its one partition.
    FROM logs l JOIN ev e ON e.request_id = l.request_id AND e.created_at = l.created_at
   WHERE l.type = 2 AND l.error_code IN ('settled_by_sweeper', 'settled_from_relay_usage')
     -- The batch's time span, as constants: the planner then plans only its days'
     -- partitions, not all of them (with 30 days kept, planning every partition made the
     -- statement 4 times slower: bench/ledger.py).
     AND l.created_at BETWEEN $34::bigint AND $35::bigint
     AND e.error_code NOT IN ('settled_by_sweeper', 'settled_from_relay_usage')
     FOR UPDATE OF l
), fixed AS (
  UPDATE logs l
     SET user_id = e.user_id, token_id = e.token_id, token_name = e.token_name,
         channel_id = e.channel_id, channels_tried = e.channels_tried::bigint[],
         model_name = e.model_name, upstream_model = e.upstream_model, endpoint = e.endpoint,
         "group" = e.grp, prompt_tokens = e.prompt_tokens,
         completion_tokens = e.completion_tokens, cached_tokens = e.cached_tokens,
         cache_write_tokens = e.cache_write_tokens, estimated = e.estimated, quota = e.quota,
         model_ratio = e.model_ratio, completion_ratio = e.completion_ratio,
         group_ratio = e.group_ratio, cached_ratio = e.cached_ratio, latency_ms = e.latency_ms,
         first_token_ms = e.first_token_ms, is_stream = e.is_stream,
         status_code = e.status_code, error_code = e.error_code, client_ip = e.client_ip,
         unit = e.unit, quantity = e.quantity, unit_price = e.unit_price,
         client_request_id = e.client_request_id
    FROM ev e, swept s
   WHERE l.id = s.id AND l.type = 2 AND l.created_at = s.created_at
     AND l.created_at BETWEEN $34::bigint AND $35::bigint
     AND e.request_id = s.request_id
  RETURNING l.request_id, l.created_at, l.user_id, l.token_id, l.channel_id, l.model_name,
            l.prompt_tokens, l.completion_tokens, l.quota
), delta AS (
  -- What this batch changes: new rows, corrected rows, minus what the sweeper had charged.
  SELECT created_at, user_id, token_id, channel_id, model_name, 1 AS n, prompt_tokens,
         completion_tokens, quota FROM ins
  UNION ALL
  SELECT created_at, user_id, token_id, channel_id, model_name, 1, prompt_tokens,
         completion_tokens, quota FROM fixed
  UNION ALL
  SELECT created_at, user_id, token_id, channel_id, model_name, -1, -prompt_tokens,
         -completion_tokens, -quota FROM swept
), tok AS (
  UPDATE tokens t
     SET used_quota = t.used_quota + s.q,
         remain_quota = CASE WHEN t.unlimited_quota THEN t.remain_quota
                             ELSE t.remain_quota - s.q END
    FROM (SELECT token_id, sum(quota) AS q FROM delta GROUP BY token_id) s
   WHERE t.id = s.token_id
  RETURNING t.id, t.unlimited_quota
), usr AS (
  UPDATE users u
     SET used_quota = u.used_quota + s.q, quota = u.quota - s.q,
         request_count = u.request_count + s.n
    FROM (SELECT user_id, sum(quota) AS q, sum(n) AS n FROM delta GROUP BY user_id) s
   WHERE u.id = s.user_id
  RETURNING u.id
), chn AS (
  UPDATE channels c SET used_quota = c.used_quota + s.q
    FROM (SELECT channel_id, sum(quota) AS q FROM delta GROUP BY channel_id) s
   WHERE c.id = s.channel_id
  RETURNING c.id
), daily AS (
  -- Grouped first: one upsert may not touch the same rollup row twice. Ordered by the key so
  -- that concurrent batches (several billing processes) lock rollup rows in the same order.
  -- The day is the UTC day by integer arithmetic, whatever the session's time zone.
  INSERT INTO usage_daily AS d (day, user_id, token_id, channel_id, model_name, requests,
                                prompt_tokens, completion_tokens, quota)
  SELECT date '1970-01-01' + (created_at / 86400)::int AS day, user_id, token_id, channel_id,
         model_name, sum(n), sum(prompt_tokens), sum(completion_tokens), sum(quota)
    FROM delta
   GROUP BY 1, 2, 3, 4, 5
   ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (day, user_id, token_id, channel_id, model_name) DO UPDATE
     SET requests = d.requests + EXCLUDED.requests,
         prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
         completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
         quota = d.quota + EXCLUDED.quota
)
-- What to mirror into the cached balances in Redis: each new row's charge, and for each
-- corrected row the difference from what the sweeper had charged; and this transaction's id,
-- so that a balance load in Redis knows whether its read saw these charges (unigate.quota).
SELECT ins.request_id, coalesce(tok.unlimited_quota, false) AS unlimited, ins.quota AS charged,
       false AS corrected, pg_current_xact_id()::text::bigint AS xid
  FROM ins LEFT JOIN tok ON tok.id = ins.token_id
UNION ALL
SELECT f.request_id, coalesce(tok.unlimited_quota, false), f.quota - s.quota, true,
       pg_current_xact_id()::text::bigint
  FROM fixed f JOIN swept s ON s.request_id = f.request_id LEFT JOIN tok ON tok.id = f.token_id
"""


# The error codes of the rows the reservation sweeper writes (``unigate_billing.sweeper``), which
# a late real event corrects (``_APPLY`` spells the same two in its SQL).
#: Charged the reservation: nothing was known about the request's usage.
SWEPT_CODE = "settled_by_sweeper"
#: Charged the provider's usage as the relay recorded it: the gateway never published.
RECOVERED_CODE = "settled_from_relay_usage"
_SWEEPER_CODES = (SWEPT_CODE, RECOVERED_CODE)


@dataclass(frozen=True, slots=True)
class Applied:
    """An event that changed the ledger: a new row, or a correction of a row the reservation
    sweeper had written (``charged`` is then the difference, possibly negative)."""

    request_id: str
    unlimited: bool
    charged: int = 0
    corrected: bool = False
    # The Postgres transaction that committed it.
    xid: int = 0


def _applied(row: asyncpg.Record) -> Applied:
    return Applied(
        row["request_id"], row["unlimited"], row["charged"], row["corrected"], row["xid"]
    )


def _row_time(e: events_pb2.UsageEvent) -> int:
    """A consume row's ``created_at``: when its request arrived, read from the request id, so
    that the consumer and the sweeper put the same request in the same partition (an id made
    before ids carried the time falls back to the event's own time)."""
    arrived = arrived_ms(e.request_id)
    return (e.created_at_ms if arrived is None else arrived) // 1000


def _columns(events: list[events_pb2.UsageEvent]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(33)]
    for e in events:
        u = e.usage
        p = e.pricing
        row = (
            e.request_id,
            _row_time(e),
            e.user_id,
            e.token_id,
            e.token_name,
            e.channel_id,
            e.model,
            e.upstream_model,
            e.endpoint,
            e.group,
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.estimated,
            e.quota,
            p.model_ratio,
            p.completion_ratio,
            p.group_ratio,
            p.cached_ratio,
            e.latency_ms,
            e.first_token_ms,
            e.stream,
            e.status_code,
            e.error_code,
            e.client_ip,
            e.reservation_id,
            e.reserved_quota,
            "{" + ",".join(str(c) for c in e.channels_tried) + "}",
            # One column for both lifetimes: the quota already says what they cost.
            u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            u.unit,
            u.quantity,
            # The price in force when the usage is in the model's unit (what priced it).
            p.unit_price if u.unit and u.unit == p.unit else "",
            e.client_request_id,
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols


def _params(events: list[events_pb2.UsageEvent]) -> list[object]:
    """``_APPLY``'s parameters: the events' columns, then their first and last row time."""
    cols = _columns(events)
    times: list[int] = cols[1]  # type: ignore[assignment]
    return [*cols, min(times), max(times)]


async def _correct_raced(
    conn: asyncpg.Connection, events: list[events_pb2.UsageEvent], applied: list[Applied]
) -> list[Applied]:
    """Correct the sweeper's rows that were still uncommitted when ``_APPLY`` ran.

    All of ``_APPLY``'s parts read one snapshot, taken when the statement starts. If the
    sweeper's insert of the same request was in flight then, the INSERT waits for it to commit
    and does nothing, while ``swept`` (whose snapshot predates that commit) does not see the
    row: the real event would be neither inserted nor corrected, and the row would stay at the
    sweeper's estimate. A real event that changed nothing is either a redelivery (its row is
    already the real one) or this race; a new statement, with a new snapshot, tells which and
    applies the missed corrections (``_APPLY`` is idempotent, so this is safe either way)."""
    done = {a.request_id for a in applied}
    waiting = [e for e in events if e.request_id not in done and e.error_code not in _SWEEPER_CODES]
    if not waiting:
        return []
    swept = await conn.fetch(
        "SELECT request_id FROM logs WHERE request_id = ANY($1::text[]) AND type = 2"
        " AND error_code = ANY($2::text[])",
        [e.request_id for e in waiting],
        list(_SWEEPER_CODES),
    )
    ids = {r["request_id"] for r in swept}
    if not ids:
        return []
    rows = await conn.fetch(_APPLY, *_params([e for e in waiting if e.request_id in ids]))
    return [_applied(r) for r in rows]


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(
        self,
        events: list[events_pb2.UsageEvent],
        dead: list[tuple[str, bytes, str]] | None = None,
    ) -> list[Applied]:
        """Insert and charge in one transaction; returns the events that were new."""
        async with self._pool.acquire() as conn:
            if not dead:
                # One statement is one transaction already: save BEGIN and COMMIT round trips.
                rows = await conn.fetch(_APPLY, *_params(events)) if events else []
                applied = [_applied(r) for r in rows]
                return applied + await _correct_raced(conn, events, applied)
            async with conn.transaction():
                rows = await conn.fetch(_APPLY, *_params(events)) if events else []
                applied = [_applied(r) for r in rows]
                applied += await _correct_raced(conn, events, applied)
                await conn.executemany(
                    "INSERT INTO dead_letters (subject, data, reason) VALUES ($1, $2, $3)", dead
                )
        return applied

    async def settlements(
        self,
        events: Iterable[events_pb2.UsageEvent],
        applied: Mapping[str, Applied],
        unlimited: Mapping[str, bool] | None = None,
    ) -> list[Settlement]:
        """What to settle in Redis for these events' reservations, once ``apply`` has run.

        An event that changed the ledger settles with what it charged. One the ledger had
        already (a redelivery, or a reservation billed before its settlement reached Redis)
        settles with the charge committed then, and only if its reservation is still open: the
        settlement before may have been cut off between the ledger and Redis. ``unlimited``
        (by reservation) says which keys have no cached token balance, where the caller knows
        better than the ledger's answer."""
        held = [e for e in events if e.reservation_id]
        earlier = await self.committed([e.request_id for e in held if e.request_id not in applied])
        out = []
        for e in held:
            a = applied.get(e.request_id)
            charged, xid = (a.charged, a.xid) if a else earlier.get(e.request_id, (0, 0))
            if unlimited is not None and e.reservation_id in unlimited:
                unl = unlimited[e.reservation_id]
            else:
                unl = a.unlimited if a else False
            out.append(
                Settlement(
                    reservation_id=e.reservation_id,
                    token_id=e.token_id,
                    user_id=e.user_id,
                    charged=charged,
                    unlimited=unl,
                    xid=xid,
                    only_if_open=a is None,
                )
            )
        return out

    async def committed(self, request_ids: list[str]) -> dict[str, tuple[int, int]]:
        """What the ledger charged for these requests (those it has rows for), and the id of
        the transaction that last wrote each row (its ``xmin`` widened to the 64-bit id
        ``pg_current_xact_id`` speaks, which the cached balances' snapshots are in)."""
        if not request_ids:
            return {}
        rows = await self._pool.fetch(
            "SELECT request_id, quota, xmin::text::bigint AS xid32,"
            " pg_current_xact_id()::text::bigint AS now FROM logs"
            " WHERE request_id = ANY($1::text[])",
            request_ids,
        )
        out = {}
        for r in rows:
            xid = (r["now"] >> 32 << 32) | r["xid32"]
            if xid > r["now"]:
                xid -= 1 << 32  # written before the 32-bit counter last wrapped
            out[r["request_id"]] = (r["quota"], xid)
        return out
