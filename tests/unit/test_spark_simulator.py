"""The Spark simulator is strict: over a real WebSocket it refuses bad handshakes with
iFlytek's HTTP statuses, and bad request frames with iFlytek's ``header.code``; a good request
is answered in several frames with status 0, 1, 2 and usage only in the last."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from unigate_relay.providers.spark.auth import rfc1123_date, signed_url
from unigate_sim.openai import count_tokens
from unigate_sim.spark import SparkApp, SparkServer, SparkSimulator

APP = SparkApp("a1b2c3d4", "c2ltLXNlY3JldC1zaW0tc2VjcmV0", "0123456789abcdef0123456789abcdef")


@pytest.fixture(scope="module")
def server() -> Iterator[SparkServer]:
    running = SparkServer(SparkSimulator([APP]))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def sim(server: SparkServer) -> Iterator[SparkSimulator]:
    server.simulator.calls.clear()
    server.simulator.faults.clear()
    yield server.simulator
    server.simulator.faults.clear()


def frame(domain: str = "generalv3.5", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "header": {"app_id": APP.app_id, "uid": "u1"},
        "parameter": {"chat": {"domain": domain, "temperature": 0.5, "max_tokens": 1024}},
        "payload": {"message": {"text": [{"role": "user", "content": "hello spark"}]}},
    }
    base.update(overrides)
    return base


def exchange(
    server: SparkServer, request: Any, path: str = "/v3.5/chat", secret: str = APP.api_secret
) -> list[dict[str, Any]]:
    url = signed_url(server.url + path, APP.api_key, secret)
    with connect(url, proxy=None, open_timeout=5) as ws:
        ws.send(request if isinstance(request, str) else orjson.dumps(request).decode())
        return [orjson.loads(raw) for raw in ws]


def code(frames: list[dict[str, Any]]) -> int:
    assert len(frames) == 1 and "payload" not in frames[0]
    assert frames[0]["header"]["status"] == 2
    return int(frames[0]["header"]["code"])


def test_answer_comes_in_frames_with_usage_in_the_last(
    server: SparkServer, sim: SparkSimulator
) -> None:
    frames = exchange(server, frame())
    statuses = [f["payload"]["choices"]["status"] for f in frames]
    assert statuses[0] == 0 and statuses[-1] == 2 and set(statuses[1:-1]) <= {1}
    assert len(frames) >= 3
    assert all(f["header"]["code"] == 0 for f in frames)
    assert ["usage" in f["payload"] for f in frames] == [False] * (len(frames) - 1) + [True]
    text = "".join(f["payload"]["choices"]["text"][0]["content"] for f in frames)
    assert text == "Echo: hello spark"
    usage = frames[-1]["payload"]["usage"]["text"]
    assert usage["completion_tokens"] == count_tokens(text)
    assert usage["prompt_tokens"] == usage["question_tokens"] == count_tokens("hello spark")
    assert sim.calls[-1]["path"] == "/v3.5/chat" and sim.calls[-1]["code"] == 0


def test_handshake_with_a_wrong_secret_is_refused_401(server: SparkServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        exchange(server, frame(), secret="not-the-secret")
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body) == {"message": "HMAC signature does not match"}


def test_handshake_with_a_stale_date_is_refused_403(server: SparkServer) -> None:
    url = signed_url(server.url + "/v3.5/chat", APP.api_key, APP.api_secret, rfc1123_date(1e9))
    with pytest.raises(InvalidStatus) as refused, connect(url, proxy=None):
        pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    ("request_frame", "path", "expected"),
    [
        ("not json", "/v3.5/chat", 10003),
        (frame(header={"app_id": "other123"}), "/v3.5/chat", 11200),
        (frame(domain="lite"), "/v3.5/chat", 10163),
        (frame(domain="generalv3.5"), "/v1.1/chat", 10163),
        (
            frame(parameter={"chat": {"domain": "generalv3.5", "temperature": 3}}),
            "/v3.5/chat",
            10163,
        ),
        (frame(parameter={"chat": {"domain": "generalv3.5", "top_k": 7}}), "/v3.5/chat", 10163),
        (frame(parameter={"chat": {"domain": "lite", "max_tokens": 8000}}), "/v1.1/chat", 10163),
        (frame(parameter={"chat": {"domain": "generalv3.5", "n": 2}}), "/v3.5/chat", 10163),
        (
            frame(payload={"message": {"text": [{"role": "assistant", "content": "hi"}]}}),
            "/v3.5/chat",
            10163,
        ),
        (
            frame(
                domain="lite",
                payload={
                    "message": {
                        "text": [
                            {"role": "system", "content": "be brief"},
                            {"role": "user", "content": "hi"},
                        ]
                    }
                },
            ),
            "/v1.1/chat",
            10163,
        ),
        (
            frame(
                payload={
                    "message": {
                        "text": [
                            {"role": "user", "content": "hi"},
                            {"role": "system", "content": "late"},
                            {"role": "user", "content": "hi"},
                        ]
                    }
                }
            ),
            "/v3.5/chat",
            10163,
        ),
        (
            frame(payload={"message": {"text": [{"role": "tool", "content": "x"}]}}),
            "/v3.5/chat",
            10163,
        ),
        (
            frame(
                domain="lite",
                payload={
                    "message": {"text": [{"role": "user", "content": "hi"}]},
                    "functions": {"text": [{"name": "f", "parameters": {"type": "object"}}]},
                },
            ),
            "/v1.1/chat",
            10163,
        ),
        (
            frame(
                payload={
                    "message": {"text": [{"role": "user", "content": "hi"}]},
                    "functions": {"text": [{"name": "f", "parameters": {"type": "string"}}]},
                }
            ),
            "/v3.5/chat",
            10163,
        ),
        (
            frame(payload={"message": {"text": [{"role": "user", "content": "word " * 9000}]}}),
            "/v3.5/chat",
            10907,
        ),
    ],
)
def test_bad_frames_are_refused_with_iflyteks_codes(
    server: SparkServer, sim: SparkSimulator, request_frame: Any, path: str, expected: int
) -> None:
    assert code(exchange(server, request_frame, path)) == expected


def test_long_context_domains_take_longer_input(server: SparkServer) -> None:
    long = frame(
        domain="max-32k",
        payload={"message": {"text": [{"role": "user", "content": "word " * 9000}]}},
    )
    frames = exchange(server, long, "/chat/max-32k")
    assert frames[-1]["payload"]["choices"]["status"] == 2


def test_weather_question_with_functions_calls_the_first(server: SparkServer) -> None:
    function = {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    }
    request = frame(
        payload={
            "message": {"text": [{"role": "user", "content": "weather in Hefei?"}]},
            "functions": {"text": [function]},
        }
    )
    frames = exchange(server, request)
    call = frames[-1]["payload"]["choices"]["text"][0]["function_call"]
    assert call["name"] == "get_weather"
    assert orjson.loads(call["arguments"]) == {"city": "weather in Hefei?"}
    usage = frames[-1]["payload"]["usage"]["text"]
    assert usage["completion_tokens"] == count_tokens("get_weather") + count_tokens(
        call["arguments"]
    )


def test_max_tokens_cuts_the_answer(server: SparkServer) -> None:
    request = frame(parameter={"chat": {"domain": "generalv3.5", "max_tokens": 2}})
    frames = exchange(server, request)
    text = "".join(f["payload"]["choices"]["text"][0]["content"] for f in frames)
    assert count_tokens(text) == 2 and "Echo: hello spark".startswith(text)


def test_injected_fault_answers_with_its_code(server: SparkServer, sim: SparkSimulator) -> None:
    sim.faults.append((11202, "over QPS"))
    assert code(exchange(server, frame())) == 11202
    assert exchange(server, frame())[-1]["header"]["code"] == 0
