"""The DashScope simulator: its key check and error bodies, the native body shape, and the
SSE framing asked for with ``X-DashScope-SSE``; the relay's request translation passes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.unit.test_openai_simulator import ThreadedServer
from unigate_relay.providers.dashscope.convert import generation_body
from unigate_relay.providers.dashscope.errors import map_error
from unigate_sim.dashscope import PATH, create_dashscope_app

KEY = "sk-unit-dashscope"
HELLO = {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hello"}]}}


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_dashscope_app({KEY})) as running:
        yield running


@pytest.fixture
def http(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def test_key_check(http: httpx.Client) -> None:
    wrong = http.post(PATH, json=HELLO, headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "InvalidApiKey"
    assert set(wrong.json()) == {"code", "message", "request_id"}
    ok = http.post(PATH, json=HELLO)
    assert ok.status_code == 200
    assert ok.json()["output"]["choices"][0]["message"]["content"] == "Echo: hello"
    usage = ok.json()["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.parametrize(
    "body",
    [
        {**HELLO, "messages": []},
        {**HELLO, "model": "gpt-4o"},
        {"model": "qwen-plus", "input": {"messages": []}},
        {"model": "qwen-plus", "input": {"messages": [{"role": "assistant", "content": "x"}]}},
        {**HELLO, "parameters": {"top_p": 0}},
        {**HELLO, "parameters": {"result_format": "json"}},
    ],
)
def test_body_rules(http: httpx.Client, body: dict[str, Any]) -> None:
    resp = http.post(PATH, json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "InvalidParameter"


@pytest.mark.parametrize("incremental", [True, False])
def test_sse_framing(http: httpx.Client, incremental: bool) -> None:
    body = {**HELLO, "parameters": {"result_format": "message", "incremental_output": incremental}}
    resp = http.post(PATH, json=body, headers={"X-DashScope-SSE": "enable"})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e]
    texts, reasons = [], []
    for number, event in enumerate(events, 1):
        lines = event.split("\n")
        assert lines[:3] == [f"id:{number}", "event:result", ":HTTP_STATUS/200"]
        data = orjson.loads(lines[3].removeprefix("data:"))
        texts.append(data["output"]["choices"][0]["message"]["content"])
        reasons.append(data["output"]["choices"][0]["finish_reason"])
    assert ("".join(texts) if incremental else texts[-1]) == "Echo: hello"
    assert reasons[-1] == "stop" and set(reasons[:-1]) <= {"null"}


def test_relay_translation_passes_the_simulator(http: httpx.Client) -> None:
    body = generation_body(
        {"messages": [{"role": "user", "content": "hello"}], "temperature": 0.3, "stop": "x"},
        "qwen-turbo",
        stream=False,
    )
    assert body["parameters"] == {"result_format": "message", "temperature": 0.3, "stop": ["x"]}
    assert http.post(PATH, json=body).status_code == 200


def test_error_mapping() -> None:
    assert map_error(401, "InvalidApiKey", "", []).fatal
    assert map_error(400, "Arrearage", "", []).fatal
    limited = map_error(429, "Throttling.RateQuota", "", [])
    assert limited.retryable and not limited.fatal and limited.error.http_status == 429
    client = map_error(400, "InvalidParameter", "bad", [])
    assert client.error.http_status == 400 and not client.retryable
