"""One API's OpenAI reseller channel types (API2D, CloseAI, OpenAI-SB, OpenAIMax, OhMyGPT,
AI.LS, AIProxy, API2GPT, AIGC2D) and its two "OpenAI compatible" types (8: the operator's host,
50: the operator's base URL with its version segment) with the ``openai`` SDK. Each serves
OpenAI's own API, so the strict OpenAI simulator stands in for it: chat and stream usage exact
in the ledger, the request on OpenAI's ``/v1`` path, and a wrong key disabling the channel."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import (
    alias,
    create_mapped_channel,
    ledger_rows,
    refused_key_disables,
)
from unigate_relay.providers.compatible.resellers import SPECS
from unigate_sim.openai import count_tokens

# (channel type, channel name, what the base URL adds to the simulator's): the resellers, and
# One API's two OpenAI-compatible types; type 50's base URL names the version (as One API's
# does), so /v1 is not added twice.
CHANNELS = [
    *((spec.channel_type, spec.name, "") for spec in SPECS),
    (8, "compat", ""),
    (50, "compat", "/v1"),
]


@pytest.mark.parametrize(
    ("channel_type", "name", "version"), CHANNELS, ids=[f"{t}-{n}" for t, n, _ in CHANNELS]
)
async def test_channel_serves_openai_and_refuses_a_wrong_key(
    channel_type: int,
    name: str,
    version: str,
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Any,
) -> None:
    await serves_openai_and_refuses_a_wrong_key(
        client, tenant, pg, secret_key, sim_app, channel_type, name, simulator.url + version
    )


async def serves_openai_and_refuses_a_wrong_key(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    sim_app: Any,
    channel_type: int,
    name: str,
    base_url: str,
) -> None:
    model = alias(name.lower().replace(".", ""))
    await create_mapped_channel(
        pg,
        secret_key,
        type=channel_type,
        name=name,
        key=SIM_KEY,
        base_url=base_url,
        models={model: "gpt-4o-mini"},
    )
    hello: Any = [{"role": "user", "content": f"hello {name}"}]
    plain = await client.chat.completions.create(model=model, messages=hello)
    assert plain.choices[0].message.content == f"Echo: hello {name}"
    stream = await client.chat.completions.create(model=model, messages=hello, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == plain.choices[0].message.content
    assert [c["path"] for c in sim_app.state.calls] == ["/v1/chat/completions"] * 2
    rows = await ledger_rows(pg, tenant, 2)
    assert [r["estimated"] for r in rows] == [False, False]
    assert plain.usage is not None
    assert rows[0]["completion_tokens"] == plain.usage.completion_tokens == count_tokens(text)

    revoked = alias("revoked")
    bad_key = "sk-revoked-" + secrets.token_hex(8)
    channel_id = await create_mapped_channel(
        pg,
        secret_key,
        type=channel_type,
        name=name,
        key=bad_key,
        base_url=base_url,
        models={revoked: "gpt-4o-mini"},
    )
    await refused_key_disables(client, pg, channel_id, revoked, bad_key, hello)
