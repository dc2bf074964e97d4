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


def quota(
    ratio: Fraction, prompt: int, hit: int, completion: int, cache: Fraction, out: Fraction
) -> int:
    return math.ceil(((prompt - hit) + hit * cache + completion * out) * ratio)


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

    await wait_for_rows(pg, tenant.token_id, 2)
    rows = await pg.fetch(
        "SELECT prompt_tokens, completion_tokens, cached_tokens, quota, model_ratio,"
        " completion_ratio, cached_ratio FROM logs WHERE token_id = $1 ORDER BY cached_tokens",
        tenant.token_id,
    )
    ratio, cache, out = Fraction(5, 2), Fraction(1, 5), Fraction(3)
    expected = [
        (first.usage.prompt_tokens, first.usage.completion_tokens, 0),
        (second.usage.prompt_tokens, second.usage.completion_tokens, hit),
    ]
    assert [(r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"]) for r in rows] == (
        expected
    )
    assert [r["quota"] for r in rows] == [quota(ratio, p, h, c, cache, out) for p, c, h in expected]
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

    await wait_for_rows(pg, tenant.token_id, 2)
    rows = await pg.fetch(
        "SELECT prompt_tokens, completion_tokens, cached_tokens, quota FROM logs"
        " WHERE token_id = $1 ORDER BY cached_tokens",
        tenant.token_id,
    )
    # The alias has no built-in price: its completion ratio is the default, 1.
    ratio, cache, out = Fraction(3, 2), Fraction(1, 4), Fraction(1)
    expected = [
        (first.usage.prompt_tokens, first.usage.completion_tokens, 0),
        (second.usage.prompt_tokens, second.usage.completion_tokens, read),
    ]
    assert [(r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"]) for r in rows] == (
        expected
    )
    assert [r["quota"] for r in rows] == [quota(ratio, p, h, c, cache, out) for p, c, h in expected]
