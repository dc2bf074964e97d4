"""Test (and benchmark) fixtures written the way auth's AdminService writes them: users, API
keys, channels and quota changes, straight into a test's own database, with auth's own
functions (``unigate_auth.admin``), so a fixture is exactly what an admin's call would make.

Only tests and benchmarks write this way; the CLI and the services go through AdminService.
"""

from __future__ import annotations

import asyncpg
import orjson

from unigate_auth.admin.channels import ChannelTable
from unigate_auth.admin.quota_rpcs import QuotaChange, adjust_quota
from unigate_auth.admin.tokens import NewToken, create_token
from unigate_auth.admin.users import create_user

__all__ = ["NewToken", "QuotaChange", "adjust_quota", "create_channel", "create_token"]
__all__ += ["create_user"]


async def create_channel(
    pool: asyncpg.Pool,
    *,
    secret_key: str,
    type: int,
    name: str,
    key: str,
    models: str,
    base_url: str = "",
    group: str = "default",
    priority: int = 0,
    weight: int = 1,
    model_mapping: dict[str, str] | None = None,
    config: dict[str, object] | None = None,
    system_prompt: str = "",
) -> int:
    """A channel and its abilities (auth's ``ChannelTable.create``); a ValueError says what
    the input lacks."""
    return await ChannelTable(pool).create(
        secret_key=secret_key,
        type=type,
        name=name,
        key=key,
        models=models,
        base_url=base_url,
        group=group,
        priority=priority,
        weight=weight,
        model_mapping=orjson.dumps(model_mapping or {}).decode(),
        config=orjson.dumps(config or {}).decode(),
        system_prompt=system_prompt,
    )
