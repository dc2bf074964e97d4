"""The Cohere simulator is strict: it refuses a missing or wrong key, unknown fields, bad
roles and tool messages, bad tool schemas and out-of-range parameters with Cohere's statuses
and ``{"id", "message"}`` bodies, and streams Cohere's exact SSE event sequence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from unigate_sim.cohere import count_tokens, create_cohere_app

KEY = "co-sim-" + "c" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_cohere_app({KEY})) as running:
        yield running


def chat(**extra: Any) -> dict[str, Any]:
    return {
        "model": "command-r-08-2024",
        "messages": [{"role": "user", "content": "hello cohere"}],
        **extra,
    }


def test_keys_are_checked(client: TestClient) -> None:
    missing = client.post("/v2/chat", json=chat())
    assert missing.status_code == 401 and missing.json()["message"] == "no api key supplied"
    wrong = client.post("/v2/chat", json=chat(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "invalid api token"
    assert set(wrong.json()) == {"id", "message"}


def test_answer_and_usage(client: TestClient) -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello cohere"},
        ]
    )
    answer = client.post("/v2/chat", json=body, headers=AUTH).json()
    assert answer["message"]["content"] == [{"type": "text", "text": "Echo: hello cohere"}]
    assert answer["finish_reason"] == "COMPLETE"
    usage = answer["usage"]
    out = count_tokens("Echo: hello cohere")
    assert usage["billed_units"] == {
        "input_tokens": count_tokens("hello cohere"),
        "output_tokens": out,
    }
    # tokens add the system prompt and the template (4 per message) to what is billed.
    assert usage["tokens"]["input_tokens"] == (
        count_tokens("hello cohere") + count_tokens("be brief") + 8
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (chat(foo=1), 400, "foo is not a valid field"),
        (chat(model="gpt-4o"), 404, "not found"),
        (chat(model="embed-english-v3.0"), 400, "does not support chat"),
        (chat(messages=[]), 400, "messages"),
        (chat(messages=[{"role": "bot", "content": "x"}]), 400, "role"),
        (chat(messages=[{"role": "tool", "content": "x"}]), 400, "tool_call_id is required"),
        (
            chat(
                messages=[
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "c9", "content": "r"},
                ]
            ),
            400,
            "does not match",
        ),
        (chat(messages=[{"role": "assistant"}]), 400, "content or tool_calls"),
        (chat(tools=[{"type": "function", "function": {"name": "bad name!"}}]), 400, "name"),
        (
            chat(
                tools=[
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            ),
            400,
            "type object",
        ),
        (chat(tool_choice="REQUIRED"), 400, "requires tools"),
        (chat(p=1.0), 400, "p must be between"),
        (chat(k=501), 400, "k must be"),
        (chat(stop_sequences=["a", "b", "c", "d", "e", "f"]), 400, "stop_sequences"),
        (
            chat(response_format={"type": "json_object", "json_schema": {"x": 1}}),
            422,
            "json_schema",
        ),
    ],
)
def test_bad_chat_requests(
    client: TestClient, body: dict[str, Any], status: int, words: str
) -> None:
    response = client.post("/v2/chat", json=body, headers=AUTH)
    assert response.status_code == status
    assert words in response.json()["message"]


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = orjson.loads(data_line[6:])
        assert data["type"] == event_line[7:]
        out.append(data)
    return out


def test_text_stream_sequence(client: TestClient) -> None:
    response = client.post("/v2/chat", json=chat(stream=True), headers=AUTH)
    assert response.headers["content-type"].startswith("text/event-stream")
    sequence = events(response.content)
    kinds = [e["type"] for e in sequence]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["content-end", "message-end"]
    assert set(kinds[2:-2]) == {"content-delta"} and len(kinds) > 5
    text = "".join(e["delta"]["message"]["content"]["text"] for e in sequence[2:-2])
    assert text == "Echo: hello cohere"
    end = sequence[-1]["delta"]
    assert end["finish_reason"] == "COMPLETE"
    assert end["usage"]["tokens"]["output_tokens"] == count_tokens(text)


def test_tool_call_stream_sequence_and_round_trip(client: TestClient) -> None:
    asked = [{"role": "user", "content": "what is the weather in Paris"}]
    response = client.post(
        "/v2/chat", json=chat(messages=asked, tools=[TOOL], stream=True), headers=AUTH
    )
    sequence = events(response.content)
    kinds = [e["type"] for e in sequence]
    assert kinds[0] == "message-start" and kinds[-1] == "message-end"
    plan_end = kinds.index("tool-call-start")
    assert set(kinds[1:plan_end]) == {"tool-plan-delta"}
    assert kinds[-2] == "tool-call-end"
    assert set(kinds[plan_end + 1 : -2]) == {"tool-call-delta"}
    start = sequence[plan_end]["delta"]["message"]["tool_calls"]
    arguments = "".join(
        e["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for e in sequence[plan_end + 1 : -2]
    )
    assert orjson.loads(arguments) == {"city": "what is the weather in Paris"}
    assert sequence[-1]["delta"]["finish_reason"] == "TOOL_CALL"
    history = [
        *asked,
        {
            "role": "assistant",
            "tool_plan": "calling",
            "tool_calls": [
                {
                    "id": start["id"],
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": start["id"], "content": "sunny"},
    ]
    answer = client.post("/v2/chat", json=chat(messages=history, tools=[TOOL]), headers=AUTH).json()
    assert answer["message"]["content"][0]["text"] == "Echo: sunny"


def test_stop_sequences_and_max_tokens(client: TestClient) -> None:
    stopped = client.post("/v2/chat", json=chat(stop_sequences=["cohere"]), headers=AUTH).json()
    assert stopped["finish_reason"] == "STOP_SEQUENCE"
    assert stopped["message"]["content"][0]["text"] == "Echo: hello "
    cut = client.post("/v2/chat", json=chat(max_tokens=2), headers=AUTH).json()
    assert cut["finish_reason"] == "MAX_TOKENS"
    assert count_tokens(cut["message"]["content"][0]["text"]) == 2


def test_embed(client: TestClient) -> None:
    body = {"model": "embed-english-v3.0", "texts": ["a b", "c"], "embedding_types": ["float"]}
    missing = client.post("/v2/embed", json=body, headers=AUTH)
    assert missing.status_code == 400 and "input_type" in missing.json()["message"]
    ok = client.post("/v2/embed", json={**body, "input_type": "search_query"}, headers=AUTH).json()
    vectors = ok["embeddings"]["float"]
    assert len(vectors) == 2 and len(vectors[0]) == 1024
    assert abs(sum(v * v for v in vectors[0]) - 1) < 1e-9
    assert ok["meta"]["billed_units"]["input_tokens"] == count_tokens("a b") + count_tokens("c")
    dims = client.post(
        "/v2/embed",
        json={**body, "input_type": "search_query", "output_dimension": 256},
        headers=AUTH,
    )
    assert dims.status_code == 400


def test_rerank(client: TestClient) -> None:
    body = {
        "model": "rerank-v3.5",
        "query": "red apple",
        "documents": ["blue sky", "red apple pie", "apple"],
    }
    ranked = client.post("/v2/rerank", json={**body, "top_n": 2}, headers=AUTH).json()
    assert [r["index"] for r in ranked["results"]] == [1, 2]
    assert ranked["meta"]["billed_units"]["search_units"] == 1
    # v2 has no return_documents.
    refused = client.post("/v2/rerank", json={**body, "return_documents": True}, headers=AUTH)
    assert refused.status_code == 400


def test_faults(client: TestClient) -> None:
    client.app.state.faults.append(
        (429, "You are using a Trial key, which is limited to 10 API calls / minute.")
    )  # type: ignore[attr-defined]
    limited = client.post("/v2/chat", json=chat(), headers=AUTH)
    assert limited.status_code == 429 and "Trial key" in limited.json()["message"]
    assert client.post("/v2/chat", json=chat(), headers=AUTH).status_code == 200
