"""One API's OpenAI reseller channel types (API2D, CloseAI, OpenAI-SB, OpenAIMax, OhMyGPT,
AI.LS, AIProxy, API2GPT, AIGC2D) with the ``openai`` SDK. Each serves OpenAI's own API at
its host, so the strict OpenAI simulator stands in for it: chat and stream usage exact in the
ledger, the request on OpenAI's ``/v1`` path, and a wrong key disabling the channel."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import (
    alias,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_rows,
)
from unigate_relay.providers.compatible.resellers import SPECS
from unigate_sim.openai import count_tokens


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_reseller_channel_serves_openai_and_refuses_a_wrong_key(
    spec: Any,
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Any,
) -> None:
    model = alias(spec.name.lower().replace(".", ""))
    await create_mapped_channel(
        pg,
        secret_key,
        type=spec.channel_type,
        name=spec.name,
        key=SIM_KEY,
        base_url=simulator.url,
        models={model: "gpt-4o-mini"},
    )
    hello: Any = [{"role": "user", "content": f"hello {spec.name}"}]
    plain = await client.chat.completions.create(model=model, messages=hello)
    assert plain.choices[0].message.content == f"Echo: hello {spec.name}"
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
        type=spec.channel_type,
        name=spec.name,
        key=bad_key,
        base_url=simulator.url,
        models={revoked: "gpt-4o-mini"},
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=revoked, messages=hello)
    assert_upstream_auth_failed(failed.value, bad_key)
    assert "upstream_auth_failed" in await eventually_disabled(pg, channel_id)
