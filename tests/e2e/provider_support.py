"""What the end-to-end tests of each provider share: its simulator on a port of its own, a
channel to it, the tenant's ledger rows, and the checks of a refused channel key (a 502 for
the client, the channel disabled)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import asyncpg
import openai
import pytest

from tests import admin_writes
from tests.e2e.conftest import Tenant, ThreadedServer
from tests.e2e.test_walking_skeleton import wait_for_rows

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

S = TypeVar("S", bound="Simulator")


class Simulator:
    """A provider simulator (an ASGI app) served from a background thread on its own port."""

    def __init__(self, app: Any) -> None:
        self.server = ThreadedServer(app)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> Any:
        return self.server.server.config.app.state

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The requests the simulator took (its ``state.calls``), oldest first."""
        calls: list[dict[str, Any]] = self.state.calls
        return calls

    def stop(self) -> None:
        self.server.stop()


def running(sim: S) -> Iterator[S]:
    """The body of a fixture yielding ``sim``: stopped after the test."""
    try:
        yield sim
    finally:
        sim.stop()


def alias(name: str) -> str:
    """A fresh client-side model name, so that no two tests share a channel's model."""
    return f"{name}-{secrets.token_hex(4)}"


async def create_mapped_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    *,
    type: int,
    name: str,
    key: str,
    base_url: str,
    models: Mapping[str, str],
    **extra: Any,
) -> int:
    """A channel serving ``models``' client names, each mapped to its upstream model (a name
    mapped to itself needs no mapping). ``extra``: the other fields of
    ``admin_writes.create_channel`` (priority, config, system_prompt, ...)."""
    return await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=type,
        name=name,
        key=key,
        base_url=base_url,
        models=",".join(models),
        model_mapping={k: v for k, v in models.items() if k != v},
        **extra,
    )


async def ledger_rows(pg: asyncpg.Pool, tenant: Tenant, n: int) -> list[asyncpg.Record]:
    """The tenant's ledger rows in order, once there are at least ``n`` of them."""
    await wait_for_rows(pg, tenant.token_id, n)
    found: list[asyncpg.Record] = await pg.fetch(
        "SELECT * FROM logs WHERE token_id = $1 ORDER BY id", tenant.token_id
    )
    return found


async def ledger_row(pg: asyncpg.Pool, tenant: Tenant, n: int) -> asyncpg.Record:
    """The ledger row of the tenant's ``n``-th request (the tests wait for each in turn)."""
    await wait_for_rows(pg, tenant.token_id, n)
    found: asyncpg.Record = await pg.fetchrow(
        "SELECT * FROM logs WHERE token_id = $1 ORDER BY id OFFSET $2 LIMIT 1",
        tenant.token_id,
        n - 1,
    )
    return found


def assert_upstream_auth_failed(
    error: openai.APIStatusError, secret: str | None = None
) -> dict[str, Any]:
    """The provider refused the channel's key: never the client's 401 but an OpenAI-shaped
    502 ``upstream_auth_failed``, without ``secret`` in it. Returns the error object."""
    assert error.status_code == 502
    body: dict[str, Any] = error.response.json()["error"]
    assert body["code"] == "upstream_auth_failed"
    if secret is not None:
        assert secret not in error.response.text
    return body


async def refused_key_disables(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    channel_id: int,
    model: str,
    wrong: str,
    messages: Any,
    *,
    says: str = "",
    stream: bool = False,
) -> None:
    """A chat on a channel whose key the provider refuses: the client gets the 502
    ``upstream_auth_failed`` (never the key; ``says`` in its message, the provider's words),
    and the channel is disabled with a reason that does not carry the key either."""
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=model, messages=messages, stream=stream)
    assert says in assert_upstream_auth_failed(refused.value, wrong)["message"]
    reason = await eventually_disabled(pg, channel_id)
    assert "upstream_auth_failed" in reason and wrong not in reason


async def eventually_disabled(pg: asyncpg.Pool, channel_id: int, within: float = 10) -> str:
    """Wait until the channel is automatically disabled (status 3); its status reason."""
    deadline = time.monotonic() + within
    while True:
        found = await pg.fetchrow(
            "SELECT status, status_reason FROM channels WHERE id = $1", channel_id
        )
        if found["status"] == 3:
            return str(found["status_reason"])
        if time.monotonic() > deadline:
            raise AssertionError(f"channel {channel_id} was not disabled: status {found['status']}")
        await asyncio.sleep(0.1)
