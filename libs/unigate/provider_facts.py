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
    "moonshot", "openai"); a new provider whose answer has one of these shapes reuses it."""

    kind: str
    path: str
    # The API lives at the bare host: a base URL ending in /v1 is trimmed for it (DeepSeek).
    strip_v1: bool = False
