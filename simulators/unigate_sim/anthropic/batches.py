"""Anthropic's Message Batches API (its API reference, "Create/Retrieve/List/Cancel/Delete a
Message Batch", "Retrieve Message Batch results"):

* ``POST /v1/messages/batches`` ``{"requests": [{"custom_id", "params"}]}`` (1 to 100,000
  requests; ``custom_id`` 1-64 of ``[a-zA-Z0-9_-]``, unique within the batch) answers a
  ``message_batch`` ``in_progress`` with every request counted as ``processing``;
* ``GET /v1/messages/batches/{id}`` the batch; ``GET /v1/messages/batches`` a page, newest
  first (``limit`` 1-1000, default 20; ``before_id``/``after_id`` cursors; ``first_id``,
  ``last_id``, ``has_more``);
* ``POST .../{id}/cancel`` marks it ``canceling`` (``cancel_initiated_at``); requests not yet
  processed end ``canceled``;
* ``GET .../{id}/results`` the ``.jsonl`` of ``{"custom_id", "result"}`` lines once the batch
  has ``ended`` (its ``results_url`` is null before);
* ``DELETE .../{id}`` ``{"id", "type": "message_batch_deleted"}``, only once it has ended.

Each request's ``params`` are validated when the batch is processed, not when it is created
(the reference: validation is asynchronous), so a bad request comes back as an ``errored``
result carrying Anthropic's error body; ``stream`` is refused there too. Processing happens
``state.batch_delay`` seconds after creation (default 0.5), all requests at once, each
answered as ``POST /v1/messages`` would answer it (same reply, usage and prompt cache) with
``usage.service_tier`` ``"batch"``. ``state.batch_expired`` (custom ids) end ``expired``
instead, as requests the 24-hour window ran out on. Unknown or deleted ids are 404
``not_found_error``. One simulator is one workspace: every accepted key sees every batch.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from unigate_sim.anthropic.errors import AnthropicError, invalid
from unigate_sim.anthropic.render import render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.request import parse_messages_request
from unigate_sim.anthropic.usage import cached_input
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject

MAX_REQUESTS = 100_000
#: How long a batch may take before its unprocessed requests expire (the reference: 24 h).
EXPIRY_SECONDS = 24 * 3600
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

ResultType = Literal["succeeded", "errored", "canceled", "expired"]


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Batch:
    """One batch: its requests as sent and, once processed, one result line per request."""

    id: str
    requests: list[JSONObject]
    created_at: float
    ready_at: float
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    results: list[JSONObject] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.ended_at is None:
            counts["processing"] = len(self.requests)
        for line in self.results:
            counts[line["result"]["type"]] += 1
        return counts

    def render(self, base_url: str) -> JSONObject:
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": self.counts(),
            "ended_at": _rfc3339(self.ended_at) if self.ended_at is not None else None,
            "created_at": _rfc3339(self.created_at),
            "expires_at": _rfc3339(self.created_at + EXPIRY_SECONDS),
            "archived_at": None,
            "cancel_initiated_at": (
                _rfc3339(self.cancel_initiated_at) if self.cancel_initiated_at is not None else None
            ),
            "results_url": (
                f"{base_url}/v1/messages/batches/{self.id}/results"
                if self.ended_at is not None
                else None
            ),
        }


def validate_create(payload: Any) -> list[JSONObject]:
    """The batch's requests, or Anthropic's 400 for a body it refuses at creation."""
    if not isinstance(payload, dict):
        raise invalid("body: Input should be an object")
    unknown = set(payload) - {"requests"}
    if unknown:
        raise invalid(f"{sorted(unknown)[0]}: Extra inputs are not permitted")
    requests = payload.get("requests")
    if not isinstance(requests, list):
        raise invalid("requests: Field required")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        raise invalid(f"requests: List should have between 1 and {MAX_REQUESTS} items")
    seen: set[str] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or set(item) != {"custom_id", "params"}:
            raise invalid(f"requests.{index}: each request takes exactly custom_id and params")
        custom_id = item["custom_id"]
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid(
                f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise invalid(f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}")
        seen.add(custom_id)
        if not isinstance(item["params"], dict):
            raise invalid(f"requests.{index}.params: Input should be an object")
    return requests


def _error_result(error: AnthropicError) -> JSONObject:
    return {"type": "errored", "error": error.body()}


class BatchStore:
    """The batches of one simulator, processed lazily: a batch whose time has come is
    processed when it is next looked at, so no task runs in the background."""

    def __init__(self, models: frozenset[str], prompt_cache: set[str]) -> None:
        self.models = models
        self.prompt_cache = prompt_cache
        self.batches: dict[str, Batch] = {}

    def create(self, payload: Any, delay: float) -> Batch:
        requests = validate_create(payload)
        now = time.time()
        batch = Batch(random_id("msgbatch_", 24), requests, now, now + delay)
        self.batches[batch.id] = batch
        return batch

    def get(self, batch_id: str, expired: set[str]) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise AnthropicError("not_found_error", f"Message Batch {batch_id} not found.")
        self._advance(batch, expired)
        return batch

    def page(
        self, expired: set[str], limit: int, before_id: str | None, after_id: str | None
    ) -> tuple[list[Batch], bool]:
        newest_first = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        ids = [b.id for b in newest_first]
        if after_id is not None:
            if after_id not in ids:
                raise invalid(f"after_id: unknown Message Batch {after_id}")
            newest_first = newest_first[ids.index(after_id) + 1 :]
        if before_id is not None:
            if before_id not in ids:
                raise invalid(f"before_id: unknown Message Batch {before_id}")
            newest_first = newest_first[: ids.index(before_id)][-limit:]
        page = newest_first[:limit]
        for batch in page:
            self._advance(batch, expired)
        return page, len(newest_first) > limit

    def cancel(self, batch_id: str, expired: set[str]) -> Batch:
        batch = self.get(batch_id, expired)
        if batch.ended_at is not None:
            raise invalid(f"Message Batch {batch_id} has already ended and cannot be canceled.")
        if batch.cancel_initiated_at is None:
            batch.cancel_initiated_at = time.time()
        return batch

    def delete(self, batch_id: str, expired: set[str]) -> None:
        batch = self.get(batch_id, expired)
        if batch.ended_at is None:
            raise invalid(f"Message Batch {batch_id} has not ended: cancel it before deleting it.")
        del self.batches[batch_id]

    def results_jsonl(self, batch_id: str, expired: set[str]) -> bytes:
        batch = self.get(batch_id, expired)
        if batch.ended_at is None:
            raise invalid(f"Message Batch {batch_id} has not finished processing.")
        return b"".join(orjson.dumps(line) + b"\n" for line in batch.results)

    def _advance(self, batch: Batch, expired: set[str]) -> None:
        if batch.ended_at is not None or time.time() < batch.ready_at:
            return
        canceled = batch.cancel_initiated_at is not None
        batch.results = [
            {"custom_id": item["custom_id"], "result": self._result(item, canceled, expired)}
            for item in batch.requests
        ]
        batch.ended_at = time.time()

    def _result(self, item: JSONObject, canceled: bool, expired: set[str]) -> JSONObject:
        if canceled:
            return {"type": "canceled"}
        if item["custom_id"] in expired:
            return {"type": "expired"}
        params = item["params"]
        if params.get("stream"):
            return _error_result(invalid("stream: batch requests cannot be streamed"))
        try:
            parsed = parse_messages_request(params, self.models)
        except AnthropicError as error:
            return _error_result(error)
        message = render_message(
            parsed, plan_reply(parsed), cached_input(parsed, self.prompt_cache)
        )
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}
