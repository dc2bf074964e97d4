"""Price options set through the management API (One API's ModelRatio and CompletionRatio,
New API's CacheRatio) price the very next call: the ledger row's quota is what they say,
checked with exact fractions against the DeepSeek and OpenAI simulators reporting
prompt-cache hits."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import asyncpg
import openai
import orjson

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import create_mapped_channel
from tests.e2e.test_compatible_providers import BY_NAME, Case, Simulated, alias, simulated
from tests.e2e.test_management_api import Api, apis, root
from tests.e2e.test_walking_skeleton import wait_for_rows

__all__ = ["apis", "root", "simulated"]  # fixtures used here


async def set_ratio(root: Api, key: str, model: str, value: float) -> None:
    """Add ``model``'s entry to the ``key`` option (a JSON object), keeping the others."""
    options = await root.ok("GET", "/option/")
    current: dict[str, Any] = {o["key"]: o["value"] for o in options}
    ratios = orjson.loads(current.get(key) or "{}")
    ratios[model] = value
    await root.ok("PUT", "/option/", json={"key": key, "value": orjson.dumps(ratios).decode()})


async def assert_billed(
    pg: asyncpg.Pool,
    tenant: Tenant,
    calls: list[tuple[int, int, int]],
    *,
    ratio: Fraction,
    cache: Fraction,
    out: Fraction,
) -> list[asyncpg.Record]:
    """The tenant's ledger rows are these calls' (prompt, completion, cached tokens), fewest
    cached first, each charged exactly: plain input at ``ratio``, cached input at ``cache``
    times that, output at ``out`` times that, rounded up. Returns the rows."""
    await wait_for_rows(pg, tenant.token_id, len(calls))
    rows: list[asyncpg.Record] = await pg.fetch(
        "SELECT * FROM logs WHERE token_id = $1 ORDER BY cached_tokens", tenant.token_id
    )
    assert [(r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"]) for r in rows] == (
        calls
    )
    assert [r["quota"] for r in rows] == [
        math.ceil(((prompt - hit) + hit * cache + completion * out) * ratio)
        for prompt, completion, hit in calls
    ]
    return rows


async def test_price_options_price_the_next_call(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    root: Api,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(BY_NAME["deepseek"])
    model = alias("priced")
    await sim.channel(pg, secret_key, {model: "deepseek-chat"})
    # Prices are by the model name the client asks for: this alias has none built in.
    await set_ratio(root, "ModelRatio", model, 2.5)
    await set_ratio(root, "CompletionRatio", model, 3)
    await set_ratio(root, "CacheRatio", model, 0.2)

    history: list[Any] = [
        {"role": "system", "content": "You price every token exactly. " * 20},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
    ]
    first = await client.chat.completions.create(
        model=model, messages=[*history, {"role": "user", "content": "one"}]
    )
    second = await client.chat.completions.create(
        model=model, messages=[*history, {"role": "user", "content": "two"}]
    )
    assert first.usage is not None and second.usage is not None
    hit = (second.usage.model_extra or {})["prompt_cache_hit_tokens"]
    assert hit > 0

    rows = await assert_billed(
        pg,
        tenant,
        [
            (first.usage.prompt_tokens, first.usage.completion_tokens, 0),
            (second.usage.prompt_tokens, second.usage.completion_tokens, hit),
        ],
        ratio=Fraction(5, 2),
        cache=Fraction(1, 5),
        out=Fraction(3),
    )
    assert {(r["model_ratio"], r["completion_ratio"], r["cached_ratio"]) for r in rows} == {
        (2.5, 3.0, 0.2)
    }


async def test_openai_cache_reads_are_billed_at_the_cache_ratio(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    root: Api,
) -> None:
    model = alias("cached")
    await create_mapped_channel(
        pg,
        secret_key,
        type=1,
        name="cache-reads",
        key=SIM_KEY,
        base_url=simulator.url,
        models={model: "gpt-4o-mini"},
    )
    await set_ratio(root, "ModelRatio", model, 1.5)
    await set_ratio(root, "CacheRatio", model, 0.25)
    system = {"role": "system", "content": "Answer briefly. " + "Background fact. " * 400}
    first = await client.chat.completions.create(
        model=model, messages=[system, {"role": "user", "content": "one"}]
    )
    second = await client.chat.completions.create(
        model=model, messages=[system, {"role": "user", "content": "two"}]
    )
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    read = second.usage.prompt_tokens_details.cached_tokens or 0
    assert read >= 1024  # OpenAI's automatic caching of a long prompt's repeated beginning

    await assert_billed(
        pg,
        tenant,
        [
            (first.usage.prompt_tokens, first.usage.completion_tokens, 0),
            (second.usage.prompt_tokens, second.usage.completion_tokens, read),
        ],
        ratio=Fraction(3, 2),
        cache=Fraction(1, 4),
        # The alias has no built-in price: its completion ratio is the default, 1.
        out=Fraction(1),
    )
