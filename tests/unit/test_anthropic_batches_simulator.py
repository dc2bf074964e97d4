"""The Anthropic simulator's Message Batches API, driven by the ``anthropic`` SDK
(``client.messages.batches``): creation, processing into succeeded/errored/canceled/expired
results with each message's usage, listing with cursors, cancel, delete, and the refusals
Anthropic answers (bad custom ids, unknown ids, deleting an unfinished batch)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from unigate_sim.anthropic import create_anthropic_app, input_tokens, parse_messages_request
from unigate_sim.anthropic.models import DEFAULT_MODELS
from unigate_sim.openai import count_tokens

KEY = "sk-ant-sim-" + "b" * 32
MODEL = "claude-sonnet-4-20250514"


def sdk(http: TestClient, key: str = KEY) -> anthropic.Anthropic:
    """The SDK on the simulator. The installed SDK sends its key as a Bearer token and a
    newer ``anthropic-version`` than the simulator knows; the relay talks to Anthropic with
    ``x-api-key`` and 2023-06-01, so the test sends those, as the relay does."""
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return anthropic.Anthropic(
        api_key=key, base_url="http://testserver", http_client=http, default_headers=headers
    )


@pytest.fixture
def app() -> Starlette:
    app = create_anthropic_app({KEY})
    app.state.batch_delay = 0.0
    return app


@pytest.fixture
def client(app: Starlette) -> Iterator[anthropic.Anthropic]:
    with TestClient(app) as http:
        yield sdk(http)


def request(custom_id: str, text: str, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def test_a_batch_is_processed_into_results_with_each_messages_usage(
    client: anthropic.Anthropic,
) -> None:
    created = client.messages.batches.create(
        requests=[
            request("first", "hello there"),
            request("bad-model", "hi", model="claude-nonexistent"),
            request("streamed", "hi", stream=True),
        ]
    )
    assert created.type == "message_batch" and created.id.startswith("msgbatch_")
    assert created.request_counts.processing == 3 and created.results_url is None

    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.succeeded == 1 and ended.request_counts.errored == 2
    assert ended.request_counts.processing == 0
    assert ended.results_url == f"http://testserver/v1/messages/batches/{created.id}/results"

    results = {line.custom_id: line.result for line in client.messages.batches.results(created.id)}
    first = results["first"]
    assert first.type == "succeeded"
    parsed = parse_messages_request(request("x", "hello there")["params"], DEFAULT_MODELS)
    assert first.message.usage.input_tokens == input_tokens(parsed)
    assert first.message.usage.output_tokens == count_tokens("Echo: hello there")
    assert first.message.usage.service_tier == "batch"
    assert results["bad-model"].type == "errored"
    assert results["bad-model"].error.error.type == "not_found_error"
    assert results["streamed"].type == "errored"
    assert results["streamed"].error.error.type == "invalid_request_error"


def test_expired_requests_and_canceled_batches(app: Starlette, client: anthropic.Anthropic) -> None:
    app.state.batch_expired = {"late"}
    done = client.messages.batches.create(requests=[request("late", "a"), request("on-time", "b")])
    kinds = {line.custom_id: line.result.type for line in client.messages.batches.results(done.id)}
    assert kinds == {"late": "expired", "on-time": "succeeded"}

    app.state.batch_delay = 0.3
    pending = client.messages.batches.create(requests=[request("one", "a"), request("two", "b")])
    canceling = client.messages.batches.cancel(pending.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(pending.id)
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(pending.id)
    # The batch is processed once its delay has passed: poll as a client would (generous bound).
    for _ in range(300):
        if client.messages.batches.retrieve(pending.id).processing_status == "ended":
            break
        time.sleep(0.05)
    ended = client.messages.batches.retrieve(pending.id)
    assert ended.request_counts.canceled == 2
    lines = list(client.messages.batches.results(pending.id))
    assert [line.result.type for line in lines] == ["canceled", "canceled"]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(pending.id)

    deleted = client.messages.batches.delete(pending.id)
    assert deleted.type == "message_batch_deleted" and deleted.id == pending.id
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.batches.retrieve(pending.id)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_list_pages_newest_first(client: anthropic.Anthropic) -> None:
    ids = [client.messages.batches.create(requests=[request("r", str(n))]).id for n in range(3)]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]] and first.has_more
    rest = client.messages.batches.list(limit=2, after_id=ids[1])
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert [b.id for b in client.messages.batches.list()] == ids[::-1]


@pytest.mark.parametrize(
    "requests",
    [
        [],
        [request("bad id!", "x")],
        [request("same", "x"), request("same", "y")],
        [{"custom_id": "no-params"}],
    ],
)
def test_creation_refuses_malformed_batches(
    client: anthropic.Anthropic, requests: list[Any]
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.batches.create(requests=requests)
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_batch_is_404_and_a_wrong_key_401(app: Starlette) -> None:
    with TestClient(app) as http:
        good = sdk(http)
        with pytest.raises(anthropic.NotFoundError):
            good.messages.batches.retrieve("msgbatch_doesnotexist")
        bad = sdk(http, "sk-wrong")
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.batches.list()
