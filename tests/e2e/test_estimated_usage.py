"""A provider that reports no usage: the ledger row is counted offline with OpenAI's encoding,
marked estimated, and within 5% of what the provider would have reported."""

from __future__ import annotations

import asyncpg
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette

from tests.e2e.conftest import Tenant
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate_sim.openai import Fault, count_prompt_tokens, count_tokens

ENGLISH = (
    "The gateway forwards every request to a provider channel chosen by priority and weight, "
    "retries on another channel when the first one fails before any byte reached the client, "
    "and records exactly one ledger row per request, even when the provider forgets to say "
    "how many tokens it used. Counting them again, offline, must land close to the truth."
)
CHINESE = (
    "网关根据优先级和权重为每个请求选择上游渠道，在第一个渠道失败且尚未向客户端发送任何字节时"  # noqa: RUF001
    "改用另一个渠道重试，并且即使上游没有返回用量，也会为每个请求记录唯一的一条账单。"  # noqa: RUF001
    "离线重新计算的令牌数量必须与真实值非常接近，误差不超过百分之五。"  # noqa: RUF001
)


def _close(estimate: int, truth: int) -> bool:
    return abs(estimate - truth) <= 0.05 * truth


@pytest.mark.parametrize("text", [ENGLISH, CHINESE], ids=["english", "chinese"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
async def test_usage_counted_offline_when_provider_reports_none(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    sim_app: Starlette,
    text: str,
    stream: bool,
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Repeat the user's words."},
        {"role": "user", "content": text},
    ]
    sim_app.state.faults.append(Fault(no_usage=True))
    if stream:
        chunks = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts, reported = [], None
        async for chunk in chunks:
            parts.extend(c.delta.content or "" for c in chunk.choices)
            reported = chunk.usage or reported
        answer = "".join(parts)
        # The provider sent none, so the client gets none invented for it.
        assert reported is None
    else:
        resp = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert resp.usage is None
        answer = resp.choices[0].message.content or ""
    assert answer == "Echo: " + text

    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["estimated"]
    # What the provider would have reported, by its own tokenizer and accounting.
    true_prompt = count_prompt_tokens([dict(m) for m in messages])
    true_completion = count_tokens(answer)
    assert _close(row["prompt_tokens"], true_prompt), (row["prompt_tokens"], true_prompt)
    assert _close(row["completion_tokens"], true_completion), (
        row["completion_tokens"],
        true_completion,
    )
    assert row["quota"] > 0
