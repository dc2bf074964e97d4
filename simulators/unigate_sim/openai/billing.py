"""OpenAI's legacy billing API, as One API reads an OpenAI channel's balance from it:

- ``GET /v1/dashboard/billing/subscription`` → ``{"object": "billing_subscription",
  "has_payment_method", "soft_limit_usd", "hard_limit_usd", "system_hard_limit_usd",
  "access_until"}``;
- ``GET /v1/dashboard/billing/usage?start_date=YYYY-MM-DD&end_date=YYYY-MM-DD`` →
  ``{"object": "list", "daily_costs": [...], "total_usage": <cents>}``. Both dates are
  required, the end is exclusive and after the start, and a range is at most 100 days;
  anything else is a 400 ``invalid_request_error``, as OpenAI answered.

The account (``app.state.billing``) holds the hard limit and the usage in cents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from unigate_sim.openai.errors import OpenAIError
from unigate_sim.openai.request_body import Body

MAX_DAYS = 100


@dataclass
class Account:
    hard_limit_usd: float = 120.0
    soft_limit_usd: float = 100.0
    has_payment_method: bool = True
    usage_cents: float = 2_050.0  # $20.50 used this period


async def subscription(request: Request, body: Body) -> Response:
    account: Account = request.app.state.billing
    return JSONResponse(
        {
            "object": "billing_subscription",
            "has_payment_method": account.has_payment_method,
            "soft_limit_usd": account.soft_limit_usd,
            "hard_limit_usd": account.hard_limit_usd,
            "system_hard_limit_usd": account.hard_limit_usd,
            "access_until": 0,
        }
    )


def _date(request: Request, name: str) -> dt.date:
    raw = request.query_params.get(name)
    if raw is None:
        raise OpenAIError(400, f"Missing query parameter '{name}'", param=name)
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise OpenAIError(
            400, f"Invalid date format for '{name}': expected YYYY-MM-DD", param=name
        ) from None


async def usage(request: Request, body: Body) -> Response:
    start, end = _date(request, "start_date"), _date(request, "end_date")
    if end <= start:
        raise OpenAIError(400, "end_date must be after start_date", param="end_date")
    if (end - start).days > MAX_DAYS:
        raise OpenAIError(400, f"Usage API only supports up to {MAX_DAYS} days of data")
    account: Account = request.app.state.billing
    return JSONResponse({"object": "list", "daily_costs": [], "total_usage": account.usage_cents})
