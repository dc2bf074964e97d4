"""Reading a provider account's balance with a channel's key, for the providers that publish
one (One API's ``/api/channel/update_balance``). Each reader takes the channel's base URL as
the relay does (``unigate_relay.providers.compatible``: the version segment, where there is
one, is part of the base) and returns the balance in the provider's own currency.

- DeepSeek ``GET /user/balance`` → ``balance_infos[].total_balance`` (strings; the USD entry
  if there is one, else the first) — api-docs.deepseek.com/api/get-user-balance.
- SiliconFlow ``GET /v1/user/info`` → ``data.totalBalance`` (a string) —
  docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info.
- OpenRouter ``GET /api/v1/credits`` → ``data.total_credits - data.total_usage`` —
  openrouter.ai/docs/api/api-reference/credits/get-credits.
- Moonshot ``GET /v1/users/me/balance`` → ``data.available_balance`` —
  platform.moonshot.ai/docs/api/balance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

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


@dataclass(frozen=True, slots=True)
class BalanceReader:
    default_base_url: str
    path: str
    parse: Callable[[Any], float]
    # DeepSeek's API lives at the bare host; a base URL ending in /v1 is trimmed for it.
    strip_v1: bool = False

    def url(self, base_url: str) -> str:
        base = (base_url or self.default_base_url).rstrip("/")
        if self.strip_v1 and base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + self.path


READERS: dict[int, BalanceReader] = {
    36: BalanceReader("https://api.deepseek.com", "/user/balance", _deepseek, strip_v1=True),
    44: BalanceReader("https://api.siliconflow.cn/v1", "/user/info", _siliconflow),
    20: BalanceReader("https://openrouter.ai/api/v1", "/credits", _openrouter),
    25: BalanceReader("https://api.moonshot.cn/v1", "/users/me/balance", _moonshot),
}


async def read_balance(channel_type: int, base_url: str, api_key: str) -> float:
    reader = READERS.get(channel_type)
    if reader is None:
        raise BalanceUnavailable(f"channel type {channel_type} publishes no balance")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.get(
                reader.url(base_url),
                headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            )
    except httpx.HTTPError as exc:
        raise BalanceUnavailable(f"provider unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        # The provider's words are not repeated: they may quote the key.
        raise BalanceUnavailable(f"provider answered HTTP {response.status_code}")
    try:
        return reader.parse(response.json())
    except (ValueError, KeyError, IndexError, TypeError):
        raise BalanceUnavailable("provider's balance answer has an unexpected shape") from None
