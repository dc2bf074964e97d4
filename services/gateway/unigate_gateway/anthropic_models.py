"""``GET /v1/models`` and ``GET /v1/models/{id}`` in Anthropic's shape, for Anthropic clients.

The ``anthropic`` SDK (``client.models.list()`` / ``.retrieve()``) and tools built on it call
the same path as OpenAI's clients, so the request says which shape it wants: one carrying
``anthropic-version`` (every Anthropic SDK sends it) or ``x-api-key`` (Anthropic's key header,
all that older SDKs send) is answered as Anthropic's Models API answers (its reference, "List
Models" / "Get a Model"): ``{"data": [{"type": "model", "id", "display_name", "created_at"}],
"has_more", "first_id", "last_id"}``, paginated by ``limit`` (1-1,000, default 20),
``after_id`` and ``before_id``, and errors in Anthropic's shape with ``request-id``.

unigate knows no release date or display name of a model a channel serves, so
``display_name`` is its id and ``created_at`` the Unix epoch (a valid RFC 3339 time, which the
SDKs parse as a datetime); the order is the key's model list's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.datastructures import Headers

from unigate import errors

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 1000
_EPOCH: Final = "1970-01-01T00:00:00Z"


def wants_anthropic(headers: Headers) -> bool:
    """Whether a request comes from an Anthropic client."""
    return "anthropic-version" in headers or "x-api-key" in headers


def model_object(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH}


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidRequest(
            f"limit: Input should be an integer from 1 to {MAX_LIMIT}", param="limit"
        )
    return limit


def model_page(names: Sequence[str], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of Anthropic's model list over ``names``, as ``query`` asks."""
    limit = _limit(query)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise errors.InvalidRequest("Only one of after_id and before_id may be given.")
    ids = list(names)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(end - limit, 0)
        page, has_more = ids[start:end], start > 0
    else:
        start = 0
        if after is not None:
            # A cursor that is no longer listed has nothing after it.
            start = ids.index(after) + 1 if after in ids else len(ids)
        page, has_more = ids[start : start + limit], start + limit < len(ids)
    return {
        "data": [model_object(n) for n in page],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
