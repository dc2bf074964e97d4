"""Dead letters: usage data billing could not apply, kept in ``dead_letters``; listed and
republished to the usage subject by ``unigate deadletter list|replay``.

Replaying is safe to repeat: the ledger applies each request id once, so a dead letter whose
events were meanwhile applied (or that is replayed twice) charges nothing again. What cannot be
applied this time either (an unknown schema version before billing learns it) is simply
dead-lettered again, as a new row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
from google.protobuf.message import DecodeError
from nats.js import JetStreamContext

from unigate.namespace import Namespace
from unigate.v1 import events_pb2

# Dead letters republished per transaction: progress is kept if a later chunk fails.
REPLAY_CHUNK = 500


class ReplayError(ValueError):
    """A replay the operator asked for that cannot be done (e.g. no such dead letter)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    subject: str
    reason: str
    size: int
    created_at: int
    replayed_at: int | None


async def list_dead_letters(
    pool: asyncpg.Pool, *, include_replayed: bool = False, limit: int = 100
) -> list[DeadLetter]:
    """Oldest first; only those not yet replayed unless ``include_replayed``."""
    rows = await pool.fetch(
        "SELECT id, subject, reason, octet_length(data) AS size, created_at, replayed_at"
        " FROM dead_letters WHERE $1 OR replayed_at IS NULL ORDER BY id LIMIT $2",
        include_replayed,
        limit,
    )
    return [
        DeadLetter(
            id=r["id"],
            subject=r["subject"],
            reason=r["reason"],
            size=r["size"],
            created_at=r["created_at"],
            replayed_at=r["replayed_at"],
        )
        for r in rows
    ]


def usage_batch_for(data: bytes, reason: str) -> bytes:
    """What to publish for a dead letter: always a ``UsageBatch`` message where the data allows.

    ``consumer.decode`` stores either a whole message (when it did not parse as a batch, or had
    no events) or one serialized ``UsageEvent`` taken out of a batch (unknown schema version,
    no request id). A serialized event cannot be told from a batch by parsing alone: it parses
    as a batch with no events (its field 1 is a varint, the batch's is a message), so a batch
    is recognised by having events, and anything else that parses as an event is wrapped.
    """
    if reason.startswith("undecodable") or reason == "empty batch":
        # Whole messages without a usable event: as they were. (Parsing noise as an event could
        # only invent one.)
        return data
    batch = events_pb2.UsageBatch()
    try:
        batch.ParseFromString(data)
    except DecodeError:
        pass
    else:
        if batch.events:
            return data
    if not data:
        return data  # an empty batch stays one
    try:
        event = events_pb2.UsageEvent.FromString(data)
    except DecodeError:
        return data
    return events_pb2.UsageBatch(events=[event]).SerializeToString()


async def replay(
    pool: asyncpg.Pool, js: JetStreamContext, ns: Namespace, *, dead_letter_id: int | None = None
) -> list[int]:
    """Republish dead letters to the usage subject and mark them replayed; returns their ids.

    Without ``dead_letter_id``: every dead letter not replayed yet. With it: that one, even if
    it was replayed before (an operator asking again, e.g. after a billing upgrade).
    """
    replayed: list[int] = []
    # Only what is dead already: what billing dead-letters again while this runs (data it still
    # cannot apply) gets new rows, and replaying those here would never end.
    last_id = await pool.fetchval("SELECT coalesce(max(id), 0) FROM dead_letters")
    while True:
        async with pool.acquire() as conn, conn.transaction():
            # Locked while publishing, so that two replays running at once do not both publish
            # the same rows (harmless for the ledger, but noise); SKIP LOCKED lets them share.
            if dead_letter_id is None:
                rows = await conn.fetch(
                    "SELECT id, data, reason, replayed_at FROM dead_letters"
                    " WHERE replayed_at IS NULL AND id <= $2 ORDER BY id LIMIT $1"
                    " FOR UPDATE SKIP LOCKED",
                    REPLAY_CHUNK,
                    last_id,
                )
            else:
                rows = await conn.fetch(
                    "SELECT id, data, reason, replayed_at FROM dead_letters WHERE id = $1"
                    " FOR UPDATE",
                    dead_letter_id,
                )
                if not rows:
                    raise ReplayError(f"no dead letter with id {dead_letter_id}")
            if not rows:
                return replayed
            for r in rows:
                # The message id makes a publish retried after a lost ack (or a replay re-run
                # after a crash before the commit below) a duplicate JetStream drops; a
                # deliberate second replay of the same row has a new one.
                await js.publish(
                    ns.usage_subject,
                    usage_batch_for(bytes(r["data"]), r["reason"]),
                    headers={"Nats-Msg-Id": f"deadletter-{r['id']}-{r['replayed_at'] or 0}"},
                )
            ids = [int(r["id"]) for r in rows]
            await conn.execute(
                "UPDATE dead_letters SET replayed_at = $2 WHERE id = ANY($1::bigint[])",
                ids,
                int(time.time()),
            )
        replayed += ids
        if dead_letter_id is not None:
            return replayed
