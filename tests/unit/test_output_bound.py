"""The output bound: exact arithmetic (auth), the reservation it sizes, and how the relay
applies it (the request's field, and the stream safety net)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unigate.output_bound import (
    UNKNOWN_MODEL_OUTPUT,
    affordable_output,
    limit_to_send,
    output_cap,
    prompt_ratio,
    worst_cost,
)
from unigate.pricing import Price, price_for, quota_for
from unigate.reservation import plan
from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.output_bound import bounded_body, bounded_stream

MINI = price_for("gpt-4o-mini")  # 0.075, completion 4
CLAUDE = price_for("claude-sonnet-4-20250514")  # 1.5, completion 5, writes 1.25 / 2


def test_worst_cost_is_exact_and_rounds_up() -> None:
    # (100 + 10 x 4) x 0.075 = 10.5 -> 11; (100 + 20 x 4) x 0.075 = 13.5 -> 14.
    assert worst_cost(MINI, 100, 10, 1.0) == 11
    assert worst_cost(MINI, 100, 20, 1.0) == 14
    # 40 x 0.075 = 3 exactly: no rounding up of a float just above 3.
    assert worst_cost(MINI, 40, 0, 1.0) == 3
    # Never 0 for a paid model that is used; 0 for a free one.
    assert worst_cost(MINI, 1, 0, 1.0) == 1
    assert worst_cost(price_for("glm-4-flash"), 10_000, 10_000, 1.0) == 0
    # The group ratio multiplies everything: 140 x 0.075 x 2 = 21.
    assert worst_cost(price_for("gpt-4o-mini", 2.0), 100, 10, 1.0) == 21


@pytest.mark.parametrize(
    "price",
    [MINI, CLAUDE, price_for("gpt-4o", 0.7), price_for("moonshot-v1-8k"), Price(1.0, 1.0)],
)
def test_worst_cost_never_below_what_billing_charges(price: Price) -> None:
    for prompt, completion in itertools.product((1, 3, 17, 100, 999, 12_345), (0, 1, 7, 512)):
        assert worst_cost(price, prompt, completion, 1.0) >= quota_for(price, prompt, completion)
        # Priced at the cache-write ratio, a prompt that is all cache writes still fits.
        ratio = prompt_ratio(price, long_cache_writes=True)
        charged = quota_for(price, prompt, completion, cache_write_1h_tokens=prompt)
        assert worst_cost(price, prompt, completion, ratio) >= charged


@pytest.mark.parametrize("budget", [1, 2, 3, 10, 11, 156, 231, 11_280, 1_000_000])
@pytest.mark.parametrize("price", [MINI, CLAUDE, price_for("gpt-4o", 1.5), Price(1.0, 1.0)])
def test_affordable_output_is_the_largest_that_fits(budget: int, price: Price) -> None:
    prompt, cap = 20, 10**9
    found = affordable_output(price, prompt, budget, 1.0, cap)
    if worst_cost(price, prompt, 0, 1.0) > budget:
        assert found == -1
        return
    assert worst_cost(price, prompt, found, 1.0) <= budget
    assert worst_cost(price, prompt, found + 1, 1.0) > budget
    # The closed form, checked with exact fractions.
    scale = Fraction(price.model_ratio) * Fraction(price.group_ratio)
    assert found == int((Fraction(budget) / scale - prompt) / Fraction(price.completion_ratio))


_RATIOS = st.one_of(
    st.sampled_from([0.0, 0.075, 0.5, 1.0, 1.25, 2.0, 4.0, 1 / 3, 1e-9]),
    st.floats(min_value=0.0, max_value=1000.0, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(
    model=_RATIOS,
    group=_RATIOS,
    completion=_RATIOS,
    ratio=_RATIOS,
    prompt=st.integers(0, 10**7),
    output=st.integers(0, 10**6),
    budget=st.integers(0, 10**12),
)
def test_integer_arithmetic_is_the_exact_fractions(
    model: float,
    group: float,
    completion: float,
    ratio: float,
    prompt: int,
    output: int,
    budget: int,
) -> None:
    """The costs are computed in integers; they must be what exact fractions of the float
    ratios give, rounded as before (up for a cost, down for the affordable output)."""
    price = Price(model, completion, group)
    scale = Fraction(model) * Fraction(group)
    exact = (prompt * Fraction(ratio) + output * Fraction(completion)) * scale
    cost = -(-exact.numerator // exact.denominator)
    if cost <= 0 and model > 0 and (prompt or output):
        cost = 1
    assert worst_cost(price, prompt, output, ratio) == max(cost, 0)
    found = affordable_output(price, prompt, budget, ratio, 10**9)
    if worst_cost(price, prompt, 0, ratio) > budget:
        assert found == -1
    elif scale <= 0 or Fraction(completion) <= 0:
        assert found == 10**9
    else:
        room = (Fraction(budget) / scale - prompt * Fraction(ratio)) / Fraction(completion)
        assert found == max(min(room.numerator // room.denominator, 10**9), 0)


def test_affordable_output_edges() -> None:
    # Ratio 1, completion ratio 1: 2 units left, a prompt of 1 token -> 1 output token.
    one = Price(1.0, 1.0)
    assert affordable_output(one, 1, 2, 1.0, 100) == 1
    assert affordable_output(one, 2, 2, 1.0, 100) == 0
    assert affordable_output(one, 3, 2, 1.0, 100) == -1
    # The cap wins when the money would allow more.
    assert affordable_output(one, 1, 10**6, 1.0, 4096) == 4096
    # Free models and free output: only the cap bounds.
    assert affordable_output(price_for("glm-4-flash"), 10**6, 0, 1.0, 777) == 777
    assert affordable_output(Price(1.0, 0.0), 10, 10, 1.0, 555) == 555
    assert affordable_output(Price(1.0, 0.0), 11, 10, 1.0, 555) == -1
    # A completion ratio of 4 and group ratio 0.5: (100/0.5 - 40) / 4 = 40.
    assert affordable_output(Price(1.0, 4.0, 0.5), 40, 100, 1.0, 10**6) == 40
    # Claude's 5-minute cache write (1.25) in the prompt's price: (1000/1.5 - 100 x 1.25)/5.
    ratio = prompt_ratio(CLAUDE)
    assert ratio == 1.25
    assert prompt_ratio(CLAUDE, long_cache_writes=True) == 2.0
    assert prompt_ratio(MINI) == 1.0
    assert affordable_output(CLAUDE, 100, 1000, ratio, 10**6) == 108


def test_output_cap() -> None:
    # The client's own limit, never above the ceiling.
    assert output_cap(["gpt-4o-mini"], 100, 65_536, 10) == 100
    assert output_cap(["my-model"], 50_000, 32_768, 10) == 32_768
    # No client limit: the model's published output limit, else a limit any model accepts.
    assert output_cap(["gpt-4o-mini"], 0, 65_536, 10) == 16_384
    assert output_cap(["claude-3-haiku-20240307"], 0, 65_536, 10) == 4_096
    assert output_cap(["my-model"], 0, 65_536, 10) == UNKNOWN_MODEL_OUTPUT
    # The smallest of the models the request may be served by; never above the ceiling.
    assert output_cap(["claude-sonnet-4-20250514", "gpt-4o"], 0, 65_536, 10) == 16_384
    assert output_cap(["o1"], 0, 32_768, 10) == 32_768
    assert output_cap(["my-model"], 0, 1_000, 10) == 1_000
    # ... and within the context window that the prompt leaves.
    assert output_cap(["gpt-3.5-turbo"], 0, 65_536, 15_000) == 1_385
    assert output_cap(["gpt-3.5-turbo"], 0, 65_536, 17_000) == 1


def test_limit_to_send() -> None:
    # The client's own limit always goes (lowered by the caller to what is covered).
    assert limit_to_send(100, 100, 16_384) == 100
    assert limit_to_send(16_384, 20_000, 16_384) == 16_384
    # No client limit: sent when below the model's published limit, or the limit is unknown.
    assert limit_to_send(500, 0, 16_384) == 500
    assert limit_to_send(16_384, 0, 16_384) == 0
    assert limit_to_send(4_096, 0, None) == 4_096


def _authorize(**kw: object) -> auth_pb2.AuthorizeRequest:
    return auth_pb2.AuthorizeRequest(endpoint="chat.completions", model="gpt-4o-mini", **kw)  # type: ignore[arg-type]


def test_plan_sizes_the_reservation_from_the_bound() -> None:
    req = _authorize(estimated_prompt_tokens=40, max_tokens=100)
    p = plan(MINI, req, ceiling=32_768, default_completion=512)
    assert (p.amount, p.least) == (worst_cost(MINI, 40, 100, 1.0), worst_cost(MINI, 40, 1, 1.0))
    # Everything asked for was reserved: the client's own limit stands.
    assert p.bound(MINI, p.amount) == 100
    # Less was left: the bound is what that covers.
    assert p.bound(MINI, 10) == affordable_output(MINI, 40, 10, 1.0, 100) == 23
    # Unlimited keys (and everyone) get the ceiling when the client names no limit.
    unbounded = plan(
        MINI, _authorize(estimated_prompt_tokens=40), ceiling=2_000, default_completion=0
    )
    ample = plan(MINI, _authorize(), ceiling=10**5, default_completion=0)
    assert ample.cap == 16_384
    # Covered up to the model's own published limit: nothing is sent, the model stops there.
    assert ample.bound(MINI, ample.amount) == 0
    assert ample.bound(MINI, ample.amount - 1) == 16_383
    # The names the channels call the model give its limit (an alias of Claude 3 Haiku).
    aliased = auth_pb2.AuthorizeRequest(endpoint="messages", model="my-alias")
    haiku = plan(
        MINI, aliased, ceiling=10**5, default_completion=0, upstream_models=["claude-3-haiku"]
    )
    assert haiku.cap == 4_096
    assert unbounded.cap == 2_000
    assert unbounded.bound(MINI, unbounded.amount) == 2_000
    # Non-generating endpoints reserve their estimate whole, with no bound.
    embed = auth_pb2.AuthorizeRequest(endpoint="embeddings", model="x", estimated_prompt_tokens=9)
    e = plan(Price(1.0, 1.0), embed, ceiling=32_768, default_completion=0)
    assert (e.amount, e.least, e.bound(Price(1.0, 1.0), e.amount)) == (9, 9, 0)


# ---- the relay --------------------------------------------------------------------------


def test_bounded_body_injects_or_lowers_the_clients_field() -> None:
    chat = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert orjson.loads(bounded_body("chat.completions", chat, 77))["max_tokens"] == 77
    injected = orjson.loads(bounded_body("chat.completions", chat, 77, "max_completion_tokens"))
    assert injected["max_completion_tokens"] == 77 and "max_tokens" not in injected
    within = orjson.dumps({"model": "m", "max_tokens": 50})
    assert bounded_body("chat.completions", within, 77) is within
    lowered = orjson.loads(
        bounded_body("chat.completions", orjson.dumps({"max_completion_tokens": 500}), 77)
    )
    # Lowered, and given as max_tokens too, which OpenAI-like providers read.
    assert lowered == {"max_completion_tokens": 77, "max_tokens": 77}
    assert orjson.loads(bounded_body("responses", b"{}", 9)) == {"max_output_tokens": 9}
    assert orjson.loads(bounded_body("messages", b'{"max_tokens": 4096}', 9)) == {"max_tokens": 9}
    assert bounded_body("embeddings", b"{}", 9) == b"{}"
    assert bounded_body("chat.completions", chat, 0) is chat


def _chunk(text: str) -> relay_pb2.RelayChunk:
    event = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return relay_pb2.RelayChunk(data=b"data: " + orjson.dumps(event) + b"\n\n")


async def test_stream_past_its_bound_is_cut_cleanly() -> None:
    closed: list[bool] = []

    async def provider() -> AsyncIterator[relay_pb2.RelayChunk]:
        try:
            for _ in range(1000):
                yield _chunk(" word")
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd())
        finally:
            closed.append(True)

    request = relay_pb2.RelayRequest(
        endpoint="chat.completions",
        model="gpt-4o-mini",
        upstream_model="gpt-4o-mini",
        body=orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
        include_usage=True,
        max_output_tokens=30,
    )
    out = [c async for c in bounded_stream(request, provider())]
    assert closed == [True]
    end = out[-1].end
    assert out[-1].HasField("end") and not end.HasField("error")
    assert end.usage.completion_tokens == 30 and end.usage.estimated
    assert sum(1 for c in out[:-2]) == 30  # one token (" word") per chunk
    frames = [
        orjson.loads(p)
        for p in out[-2].data.split(b"\n\n")
        if p.startswith(b"data: {")
        for p in [p[6:]]
    ]
    assert frames[0]["choices"][0]["finish_reason"] == "length"
    assert frames[0]["id"] == "chatcmpl-1"
    assert frames[1]["usage"]["completion_tokens"] == 30
    assert out[-2].data.endswith(b"data: [DONE]\n\n")


async def test_stream_within_its_bound_is_untouched() -> None:
    chunks = [_chunk(" word") for _ in range(10)] + [
        relay_pb2.RelayChunk(end=relay_pb2.StreamEnd())
    ]

    async def provider() -> AsyncIterator[relay_pb2.RelayChunk]:
        for c in chunks:
            yield c

    request = relay_pb2.RelayRequest(endpoint="chat.completions", max_output_tokens=10)
    assert [c async for c in bounded_stream(request, provider())] == chunks


def _event(kind: str, **fields: Any) -> bytes:
    data = orjson.dumps({"type": kind, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


async def test_messages_stream_past_its_bound_ends_as_anthropic_does() -> None:
    async def provider() -> AsyncIterator[relay_pb2.RelayChunk]:
        yield relay_pb2.RelayChunk(data=_event("message_start", message={"id": "msg_1"}))
        yield relay_pb2.RelayChunk(
            data=_event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        )
        for _ in range(100):
            delta = {"type": "text_delta", "text": " word"}
            yield relay_pb2.RelayChunk(data=_event("content_block_delta", index=0, delta=delta))

    request = relay_pb2.RelayRequest(
        endpoint="messages",
        model="claude-sonnet-4-20250514",
        body=orjson.dumps({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
        max_output_tokens=10,
    )
    out = [c async for c in bounded_stream(request, provider())]
    assert out[-1].end.usage.completion_tokens == 10
    ending = [orjson.loads(line[6:]) for line in out[-2].data.split(b"\n") if line[:6] == b"data: "]
    assert [e["type"] for e in ending] == ["content_block_stop", "message_delta", "message_stop"]
    assert ending[0]["index"] == 0
    assert ending[1]["delta"]["stop_reason"] == "max_tokens"
    assert ending[1]["usage"] == {"output_tokens": 10}
    assert out[-2].data.startswith(b"event: content_block_stop\ndata: ")


async def test_one_read_of_many_events_is_cut_between_events() -> None:
    many = b"".join(_chunk(" word").data for _ in range(500))

    async def provider() -> AsyncIterator[relay_pb2.RelayChunk]:
        yield relay_pb2.RelayChunk(data=many)

    request = relay_pb2.RelayRequest(
        endpoint="chat.completions", model="gpt-4o-mini", body=b"{}", max_output_tokens=30
    )
    out = [c async for c in bounded_stream(request, provider())]
    assert len(out) == 2 and out[-1].end.usage.completion_tokens == 30
    assert out[0].data.startswith(many[: len(_chunk(" word").data) * 30])
    assert out[0].data.count(b'"content":" word"') == 30
    assert b'"finish_reason":"length"' in out[0].data
