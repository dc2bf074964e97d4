"""Every service's Prometheus ``/metrics``: requests made with the ``openai`` SDK move the
figures of each service by exactly what they did.

The test uses a channel of its own, serving a model name only it uses (mapped to the
simulator's ``gpt-4o-mini``), so the labelled series it checks belong to it alone, whatever
else the session's other tests did before.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer, broadcast_change
from unigate.db import bound_namespace
from unigate.quota import QuotaStore
from unigate_cli.devstack import Stack
from unigate_sim.openai.faults import Fault

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MODEL = "metrics-" + uuid.uuid4().hex[:8]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


class Scraper:
    def __init__(self, stack: Stack) -> None:
        p = stack.config.ports
        self.urls = {
            "gateway": f"http://127.0.0.1:{p.gateway_ops}/metrics",
            "auth": f"http://127.0.0.1:{p.auth_ops}/metrics",
            "relay": f"http://127.0.0.1:{p.relay_ops}/metrics",
            "billing": f"http://127.0.0.1:{p.billing_ops}/metrics",
        }

    async def all(self) -> dict[str, Samples]:
        got = await asyncio.gather(*(scrape(u) for u in self.urls.values()))
        return dict(zip(self.urls, got, strict=True))

    async def until(
        self, service: str, done: Callable[[Samples], bool], within: float = 20.0
    ) -> Samples:
        deadline = time.monotonic() + within
        while True:
            samples = await scrape(self.urls[service])
            if done(samples):
                return samples
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} metrics did not reach the expected state")
            await asyncio.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
async def own_channel(
    pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer, stack: Stack
) -> int:
    channel = await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name="metrics",
        key=SIM_KEY,
        base_url=simulator.url,
        models=MODEL,
        model_mapping={MODEL: "gpt-4o-mini"},
    )
    await broadcast_change(stack, "channel", [channel])
    return channel


async def test_every_service_counts_what_it_did(
    stack: Stack,
    tenant: Tenant,
    own_channel: int,
    sim_app: Starlette,
    pg: asyncpg.Pool,
    redis: Redis,
) -> None:
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=30
    )
    scraper = Scraper(stack)
    before = await scraper.all()
    quota = QuotaStore(redis, await bound_namespace(pg, stack.config.namespace))
    # Reservations open before this test's calls (an earlier test's, or none).
    baseline = (await quota.open_reservations())[0]
    channel = str(own_channel)
    messages: Any = [{"role": "user", "content": "count me"}]

    # Refused by auth before any channel: counted with no model and no channel.
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(
            api_key="sk-" + "0" * 48, base_url=stack.gateway_url + "/v1", max_retries=0
        ).chat.completions.create(model=MODEL, messages=messages)

    prompt = completion = 0
    for _ in range(3):
        answer = await client.chat.completions.create(model=MODEL, messages=messages)
        assert answer.usage is not None
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
    for _ in range(2):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage async for c in stream if c.usage is not None]
        assert len(usage) == 1
        prompt += usage[0].prompt_tokens
        completion += usage[0].completion_tokens

    # The calls so far are settled first: billing settles a reservation once the call's usage
    # event (held back a few milliseconds by the gateway, to batch) is in the ledger.
    async def settled() -> bool:
        return bool((await quota.open_reservations())[0] <= baseline)

    await eventually(settled)
    quiet = (await quota.open_reservations())[0]

    # While a slow call is in flight its reservation is open, and billing's scrape reads it
    # from Redis at that moment.
    sim_app.state.faults.append(Fault(delay=2.0))
    slow = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=messages))

    async def reserved() -> bool:
        return bool((await quota.open_reservations())[0] > quiet)

    await eventually(reserved)
    # Equal to what Redis holds at that moment (one, unless an earlier test left another).
    while True:
        open_before = (await quota.open_reservations())[0]
        open_now = await scrape(scraper.urls["billing"])
        if (await quota.open_reservations())[0] == open_before:
            break
    assert value(open_now, "unigate_reservations_outstanding") == open_before >= 1
    assert value(open_now, "unigate_reservation_oldest_age_seconds") > 0
    answer = await slow
    assert answer.usage is not None
    prompt += answer.usage.prompt_tokens
    completion += answer.usage.completion_tokens

    # The provider fails once: the relay counts an upstream error and the channel's breaker
    # trips (auth reads its state from Redis at scrape time).
    sim_app.state.fail_next.append(
        (500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=MODEL, messages=messages)
    failed_status = str(failed.value.status_code)
    assert failed.value.status_code >= 500

    served = 6  # four unary answers and two streams
    authorized = served + 1
    billing = await scraper.until(
        "billing",
        lambda s: (
            value(s, "unigate_billing_events_total", result="applied")
            - value(before["billing"], "unigate_billing_events_total", result="applied")
            >= authorized
        ),
    )
    after = await scraper.all()
    after["billing"] = billing

    def delta(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    # gateway
    route = "chat.completions"
    ok = {"route": route, "model": MODEL, "channel": channel}
    assert delta("gateway", "unigate_gateway_requests_total", **ok, status="200") == served
    assert delta("gateway", "unigate_gateway_requests_total", **ok, status=failed_status) == 1
    assert (
        delta(
            "gateway",
            "unigate_gateway_requests_total",
            route=route,
            model="",
            channel="",
            status="401",
        )
        == 1
    )
    duration = "unigate_gateway_request_duration_seconds_count"
    assert delta("gateway", duration, route=route) == served + 2
    assert delta("gateway", "unigate_gateway_time_to_first_token_seconds_count", route=route) == 2
    assert delta("gateway", "unigate_gateway_usage_events_published_total") == authorized
    assert value(after["gateway"], "unigate_gateway_usage_buffer_events") == 0
    assert delta("gateway", "unigate_gateway_usage_publish_failures_total") == 0

    # relay
    up = {"family": "openai", "channel": channel}
    assert delta("relay", "unigate_relay_upstream_requests_total", **up, outcome="ok") == served
    assert delta("relay", "unigate_relay_upstream_requests_total", **up, outcome="error") == 1
    errors = [
        (dict(labels)["code"], v - before["relay"].get((n, labels), 0.0))
        for (n, labels), v in after["relay"].items()
        if n == "unigate_relay_upstream_errors_total" and set(up.items()) <= labels
    ]
    assert [d for _, d in errors if d] == [1]
    ttft = "unigate_relay_upstream_time_to_first_token_seconds_count"
    assert delta("relay", ttft, **up) == 2
    assert delta("relay", "unigate_relay_upstream_duration_seconds_count", **up) >= served
    assert value(after["relay"], "unigate_relay_upstream_in_flight") == 0

    # auth
    # A hot key's requests are served from spare reservations, without a decision of auth's.
    from_spares = delta("gateway", "unigate_gateway_spare_served_total")
    allowed = delta("auth", "unigate_auth_decisions_total", outcome="allowed")
    assert allowed + from_spares == authorized
    assert delta("auth", "unigate_auth_decisions_total", outcome="invalid_api_key") == 1

    # billing: exactly what the ledger holds for this channel
    ledger = await pg.fetchrow(
        "SELECT count(*) AS n, sum(prompt_tokens) AS p, sum(completion_tokens) AS c,"
        " sum(quota) AS q FROM logs WHERE type = 2 AND channel_id = $1",
        own_channel,
    )
    assert ledger["n"] == authorized
    assert (ledger["p"], ledger["c"]) == (prompt, completion)
    tokens = "unigate_billing_tokens_total"
    assert delta("billing", tokens, model=MODEL, kind="prompt") == prompt
    assert delta("billing", tokens, model=MODEL, kind="completion") == completion
    assert delta("billing", "unigate_billing_quota_total", model=MODEL) == ledger["q"] > 0
    assert delta("billing", "unigate_billing_batch_events_sum") >= authorized
    assert delta("billing", "unigate_billing_batch_events_count") >= 1
    assert delta("billing", "unigate_billing_ledger_write_seconds_count") >= 1
    drained = await scraper.until(
        "billing",
        lambda s: (
            value(s, "unigate_billing_consumer_pending_messages") == 0
            and value(s, "unigate_billing_consumer_ack_pending_messages") == 0
            and value(s, "unigate_reservations_outstanding") == 0
        ),
    )
    assert value(drained, "unigate_reservation_oldest_age_seconds") == 0

    # The breaker: tripped by the failure, healthy again once a call succeeds after the
    # cooldown (1 s for a first failure).
    circuit = "unigate_channel_circuit_state"
    tripped = await scraper.until(
        "auth",
        lambda s: (
            total(s, circuit, channel=channel, state="healthy") == 0
            and total(s, circuit, channel=channel) == 1
        ),
    )
    assert (
        value(tripped, circuit, channel=channel, state="cooling")
        + value(tripped, circuit, channel=channel, state="half-open")
        == 1
    )

    async def recovered() -> bool:
        await client.chat.completions.create(model=MODEL, messages=messages)
        s = await scrape(scraper.urls["auth"])
        return value(s, circuit, channel=channel, state="healthy") == 1

    await eventually(recovered, within=15)
    s = await scrape(scraper.urls["auth"])
    assert value(s, circuit, channel=channel, state="cooling") == 0
    assert 0 < value(s, "unigate_channel_latency_ewma_seconds", channel=channel) < 5
