"""Reading a provider account's balance with a channel's key, for the providers that publish
one (One API's ``/api/channel/update_balance``). Each reader takes the channel's base URL as
the relay does (``unigate_relay.providers.compatible``: the version segment, where there is
one, is part of the base) and returns the balance in the provider's own currency. Which
types publish one, where, and in which shape (``kind``) is each provider's declaration
(``unigate.channel_types.ChannelType.balance``); this module only knows the shapes.

- DeepSeek ``GET /user/balance`` → ``balance_infos[].total_balance`` (strings; the USD entry
  if there is one, else the first) — api-docs.deepseek.com/api/get-user-balance.
- SiliconFlow ``GET /v1/user/info`` → ``data.totalBalance`` (a string) —
  docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info.
- OpenRouter ``GET /api/v1/credits`` → ``data.total_credits - data.total_usage`` —
  openrouter.ai/docs/api/api-reference/credits/get-credits.
- Moonshot ``GET /v1/users/me/balance`` → ``data.available_balance`` —
  platform.moonshot.ai/docs/api/balance.
- OpenAI (and OpenAI-compatible services that keep its legacy billing API), as One API reads
  it: ``GET /v1/dashboard/billing/subscription`` → ``hard_limit_usd``, less
  ``GET /v1/dashboard/billing/usage?start_date&end_date`` → ``total_usage`` (cents) from the
  first of this month (the last 100 days for an account without a payment method) to
  tomorrow (the end date is exclusive).
- One API's OpenAI resellers, as its ``controller/channel-billing.go`` reads them (the only
  public description of these account APIs): CloseAI and AIGC2D ``GET
  /dashboard/billing/credit_grants`` → ``total_available``; API2GPT the same path →
  ``total_remaining``; OpenAI-SB ``GET /sb-api/user/status?api_key=`` → ``data.credit`` (a
  string; ``data`` null and ``msg`` saying why when the key is refused); AIProxy ``GET
  https://aiproxy.io/api/report/getUserOverview`` with an ``Api-Key`` header →
  ``data.totalPoints`` (``success`` false, ``error_code`` and ``message`` when refused).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from unigate.channel_types import BalanceApi, ChannelType
from unigate.channel_types import channel_type as lookup

TIMEOUT_SECONDS = 15.0


class BalanceUnavailable(RuntimeError):
    """No balance could be read; the message says why (for the operator)."""


def _deepseek(body: Any) -> float:
    infos = body["balance_infos"]
    chosen = next((i for i in infos if i.get("currency") == "USD"), infos[0])
    return float(chosen["total_balance"])


def _siliconflow(body: Any) -> float:
    return float(body["data"]["totalBalance"])


def _openrouter(body: Any) -> float:
    data = body["data"]
    return float(data["total_credits"]) - float(data["total_usage"])


def _moonshot(body: Any) -> float:
    return float(body["data"]["available_balance"])


def _credit_grants(body: Any) -> float:
    return float(body["total_available"])


def _api2gpt(body: Any) -> float:
    return float(body["total_remaining"])


def _openai_sb(body: Any) -> float:
    # A refused key is answered 200 with no data and the reason in ``msg``.
    if body.get("data") is None:
        raise BalanceUnavailable(f"provider refused: {body.get('msg') or 'no account data'}")
    return float(body["data"]["credit"])


def _aiproxy(body: Any) -> float:
    # A refused key is answered 200 with ``success`` false.
    if body.get("success") is not True:
        raise BalanceUnavailable(
            f"provider refused: code {body.get('error_code')}, {body.get('message') or ''}"
        )
    return float(body["data"]["totalPoints"])


# The answer shapes a provider's declaration may name as its balance API's ``kind``.
PARSERS: dict[str, Callable[[Any], float]] = {
    "deepseek": _deepseek,
    "siliconflow": _siliconflow,
    "openrouter": _openrouter,
    "moonshot": _moonshot,
    "credit_grants": _credit_grants,
    "api2gpt": _api2gpt,
    "openai_sb": _openai_sb,
    "aiproxy": _aiproxy,
    # Two calls (subscription, then usage): read_balance handles this shape itself.
    "openai": lambda body: float(body["hard_limit_usd"]),
}


def balance_url(ct: ChannelType, api: BalanceApi, base_url: str) -> str:
    base = (base_url or ct.base_url).rstrip("/")
    if api.host and base == ct.base_url.rstrip("/"):
        base = api.host.rstrip("/")
    if api.strip_v1 and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + api.path


async def read_balance(channel_type: int, base_url: str, api_key: str) -> float:
    ct = lookup(channel_type)
    api = ct.balance if ct else None
    if ct is None or api is None:
        raise BalanceUnavailable(f"channel type {channel_type} publishes no balance")
    parse = PARSERS.get(api.kind)
    if parse is None:
        raise BalanceUnavailable(f"this auth cannot read {api.kind!r} balance answers")
    headers = {"Accept": "application/json"}
    if api.key_header:
        headers[api.key_header] = api_key
    else:
        headers["Authorization"] = f"Bearer {api_key}"
    url = balance_url(ct, api, base_url)
    if api.key_query:
        url += "?" + urlencode({api.key_query: api_key})
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        body = await _get_json(client, url, headers)
        try:
            if api.kind == "openai":
                return await _openai_remaining(client, url, headers, body)
            return parse(body)
        except BalanceUnavailable as exc:
            # The provider's own words are kept, but never the key they may quote.
            message = str(exc).replace(api_key, "***") if api_key else str(exc)
            raise BalanceUnavailable(message) from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BalanceUnavailable("provider's balance answer has an unexpected shape") from None


async def _get_json(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise BalanceUnavailable(f"provider unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        # The provider's words are not repeated: they may quote the key.
        raise BalanceUnavailable(f"provider answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise BalanceUnavailable("provider's balance answer is not JSON") from None


async def _openai_remaining(
    client: httpx.AsyncClient, subscription_url: str, headers: dict[str, str], body: Any
) -> float:
    """The hard limit of the subscription (``body``) less this period's usage."""
    limit = float(body["hard_limit_usd"])
    today = dt.datetime.now(dt.UTC).date()
    start = today.replace(day=1) if body.get("has_payment_method") else today - dt.timedelta(99)
    usage_url = subscription_url.removesuffix("/subscription") + "/usage"
    usage = await _get_json(
        client,
        f"{usage_url}?start_date={start.isoformat()}"
        f"&end_date={(today + dt.timedelta(1)).isoformat()}",
        headers,
    )
    return limit - float(usage["total_usage"]) / 100
