"""Value types shared by the relay's provider declarations and the catalog's reader
(``unigate.channel_types``). Importing this module reads no file, so ``make providers`` can
regenerate a stale or broken catalog."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BalanceApi:
    """The provider publishes its account balance: ``GET {base_url}{path}`` with the key as a
    bearer token answers it in the shape ``kind`` names, one of auth's balance parsers
    (``unigate_auth.admin.balances.PARSERS``: "deepseek", "siliconflow", "openrouter",
    "moonshot", "openai", "credit_grants", "api2gpt", "openai_sb", "aiproxy"); a new provider
    whose answer has one of these shapes reuses it."""

    kind: str
    path: str
    # The API lives at the bare host: a base URL ending in /v1 is trimmed for it (DeepSeek).
    strip_v1: bool = False
    # The balance API lives on another host than the model API (AIProxy: aiproxy.io, not
    # api.aiproxy.io). Used while the channel keeps the type's default base URL; a channel
    # pointed elsewhere (a mirror, a simulator) is asked at its own base.
    host: str = ""
    # The header carrying the bare key instead of ``Authorization: Bearer`` (AIProxy's
    # ``Api-Key``).
    key_header: str = ""
    # A query parameter carrying the key as well as the header (OpenAI-SB's ``api_key``).
    key_query: str = ""
