"""The Responses API's stored responses in Postgres (``stored_responses``, migration 0013).

Auth keeps them because it is the service that knows whose a key is: every read and delete
is by (id, the key's user), so a response is invisible to anyone but its owner, and an id
of someone else's answers exactly as an unknown one. Each row holds one turn (its input
items and the response object); a conversation is the chain of ``previous_response_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import orjson

# Deep enough for any real conversation; a bound so that a cycle (impossible through the
# API, ids are ours or the provider's) could never run away.
MAX_CHAIN = 1000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: bytes
    input_items: bytes
    channel_id: int


class StoredResponses:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def save(
        self,
        *,
        id: str,
        user_id: int,
        token_id: int,
        channel_id: int,
        model: str,
        previous_response_id: str,
        input_items: bytes,
        response: bytes,
    ) -> None:
        # A provider's id seen twice (a retried save) keeps the first row.
        await self._pool.execute(
            "INSERT INTO stored_responses (id, user_id, token_id, channel_id, model,"
            " previous_response_id, input_items, response)"
            " VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7::jsonb, $8::jsonb)"
            " ON CONFLICT (id) DO NOTHING",
            id,
            user_id,
            token_id,
            channel_id,
            model,
            previous_response_id,
            input_items.decode(),
            response.decode(),
        )

    async def get(self, id: str, user_id: int) -> StoredResponse | None:
        row = await self._pool.fetchrow(
            "SELECT response::text, input_items::text, channel_id FROM stored_responses"
            " WHERE id = $1 AND user_id = $2",
            id,
            user_id,
        )
        if row is None:
            return None
        return StoredResponse(row[0].encode(), row[1].encode(), row[2])

    async def history(self, id: str, user_id: int) -> bytes:
        """The items of the chain ending at ``id``, oldest turn first: each turn's input,
        then its output."""
        rows = await self._pool.fetch(
            "WITH RECURSIVE chain AS ("
            " SELECT previous_response_id, input_items, response->'output' AS output, 0 AS depth"
            " FROM stored_responses WHERE id = $1 AND user_id = $2"
            " UNION ALL"
            " SELECT s.previous_response_id, s.input_items, s.response->'output', c.depth + 1"
            " FROM stored_responses s JOIN chain c ON s.id = c.previous_response_id"
            " WHERE s.user_id = $2 AND c.depth < $3)"
            " SELECT input_items::text, output::text FROM chain ORDER BY depth DESC",
            id,
            user_id,
            MAX_CHAIN,
        )
        items: list[object] = []
        for inputs, output in rows:
            items.extend(orjson.loads(inputs))
            parsed = orjson.loads(output) if output else None
            items.extend(parsed if isinstance(parsed, list) else [])
        return orjson.dumps(items)

    async def delete(self, id: str, user_id: int) -> bool:
        status = await self._pool.execute(
            "DELETE FROM stored_responses WHERE id = $1 AND user_id = $2", id, user_id
        )
        return bool(status.endswith(" 1"))
