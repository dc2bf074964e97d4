"""The Hunyuan simulator over HTTP: a request signed by the relay's signer passes, a wrong
key, a stale timestamp or a changed body does not, and the body must be PascalCase
ChatCompletions with Hunyuan's turn rules; the stream has Hunyuan's framing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.unit.test_openai_simulator import ThreadedServer
from unigate_relay.providers.hunyuan import signer
from unigate_relay.providers.hunyuan.convert import chat_body
from unigate_sim.hunyuan import create_hunyuan_app

SID, SKEY = "AKIDunit", "unit-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_hunyuan_app({SID: SKEY})) as running:
        yield running


@pytest.fixture
def http(server: ThreadedServer) -> Iterator[httpx.Client]:
    server.app.state.calls.clear()
    with httpx.Client(base_url=server.url) as client:
        yield client


def post(
    http: httpx.Client, body: Any, *, key: str = SKEY, skew: int = 0, tamper: bool = False
) -> httpx.Response:
    payload = orjson.dumps(body)
    host = http.base_url.netloc.decode()
    timestamp = int(time.time()) + skew
    headers = {
        "Content-Type": "application/json",
        "X-TC-Action": "ChatCompletions",
        "X-TC-Version": "2023-09-01",
        "X-TC-Timestamp": str(timestamp),
        "Authorization": signer.authorization(
            secret_id=SID,
            secret_key=key,
            service="hunyuan",
            host=host,
            content_type="application/json",
            timestamp=timestamp,
            payload=payload,
        ),
    }
    if tamper:
        payload = payload.replace(b"hello", b"HELLO")
    return http.post("/", content=payload, headers=headers)


def error_code(resp: httpx.Response) -> str | None:
    assert resp.status_code == 200  # API 3.0 errors are never HTTP errors
    error = resp.json()["Response"].get("Error")
    return error["Code"] if error else None


HELLO = {"Model": "hunyuan-lite", "Messages": [{"Role": "user", "Content": "hello"}]}


def test_signed_request_passes_and_tampering_fails(http: httpx.Client) -> None:
    ok = post(http, HELLO)
    assert error_code(ok) is None
    response = ok.json()["Response"]
    assert response["Choices"][0]["Message"]["Content"] == "Echo: hello"
    assert response["Usage"]["TotalTokens"] == (
        response["Usage"]["PromptTokens"] + response["Usage"]["CompletionTokens"]
    )
    assert error_code(post(http, HELLO, key="wrong")) == "AuthFailure.SignatureFailure"
    assert error_code(post(http, HELLO, tamper=True)) == "AuthFailure.SignatureFailure"
    assert error_code(post(http, HELLO, skew=-600)) == "AuthFailure.SignatureExpire"
    assert error_code(http.post("/", json=HELLO)) == "AuthFailure.InvalidAuthorization"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**HELLO, "messages": []}, "UnknownParameter"),
        ({**HELLO, "Model": "gpt-4o"}, "InvalidParameterValue.Model"),
        ({**HELLO, "Messages": [{"Role": "assistant", "Content": "x"}]}, "InvalidParameter"),
        (
            {
                **HELLO,
                "Messages": [{"Role": "user", "Content": "a"}, {"Role": "user", "Content": "b"}],
            },
            "InvalidParameter",
        ),
        (
            {
                **HELLO,
                "Messages": [{"Role": "user", "Content": "a"}, {"Role": "system", "Content": "s"}],
            },
            "InvalidParameter",
        ),
        ({**HELLO, "Messages": [{"role": "user", "content": "a"}]}, "InvalidParameter"),
        ({**HELLO, "Temperature": 2.5}, "InvalidParameterValue"),
        (
            {**HELLO, "Tools": [{"Type": "function", "Function": {"Name": "f", "Parameters": {}}}]},
            "InvalidParameter",
        ),
    ],
)
def test_body_rules(http: httpx.Client, body: dict[str, Any], code: str) -> None:
    assert error_code(post(http, body)) == code


def test_stream_framing(http: httpx.Client) -> None:
    resp = post(http, {**HELLO, "Stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [orjson.loads(e.removeprefix("data: ")) for e in resp.text.split("\n\n") if e]
    assert "".join(e["Choices"][0]["Delta"]["Content"] for e in events) == "Echo: hello"
    assert [e["Choices"][0]["FinishReason"] for e in events][-1] == "stop"
    assert all(e["Choices"][0]["FinishReason"] == "" for e in events[:-1])


def test_relay_translation_passes_the_simulator(http: httpx.Client) -> None:
    body = chat_body(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "system", "content": "sys"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "auto",
        },
        "hunyuan-functioncall",
        stream=False,
    )
    assert body["Messages"][0] == {"Role": "system", "Content": "sys"}
    # The schema travels as a JSON string (an empty one becomes an empty object schema).
    assert body["Tools"][0]["Function"]["Parameters"] == '{"type":"object","properties":{}}'
    assert error_code(post(http, body)) is None
