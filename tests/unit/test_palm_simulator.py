"""The PaLM API simulator refuses what Google's v1beta2 ``generateMessage`` refuses, in
Google's error shape, and answers in its shape (no token counts)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from unigate_sim.palm import BLOCK_WORD, create_palm_app

KEY = "AIza-sim-" + "p" * 30
URL = "/v1beta2/models/chat-bison-001:generateMessage"
HELLO: dict[str, Any] = {"prompt": {"messages": [{"author": "0", "content": "hello palm"}]}}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_palm_app({KEY}))


def post(client: TestClient, body: Any, url: str = URL) -> Any:
    return client.post(url, json=body, headers={"x-goog-api-key": KEY})


def refusal(response: Any, status: int = 400) -> str:
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status and error["status"]
    return str(error["message"])


def test_answer_shape_and_candidates(client: TestClient) -> None:
    answer = post(client, {**HELLO, "candidateCount": 2, "temperature": 0.2, "topK": 40})
    assert answer.status_code == 200
    body = answer.json()
    assert body["candidates"] == [
        {"author": "1", "content": "Echo: hello palm"},
        {"author": "1", "content": "Echo (2): hello palm"},
    ]
    assert body["messages"] == HELLO["prompt"]["messages"] and "usage" not in body
    blocked = post(client, {"prompt": {"context": BLOCK_WORD, **HELLO["prompt"]}}).json()
    assert "candidates" not in blocked and blocked["filters"] == [{"reason": "OTHER"}]


def test_keys_models_and_paths(client: TestClient) -> None:
    assert client.post(URL + f"?key={KEY}", json=HELLO).status_code == 200
    missing = client.post(URL, json=HELLO)
    assert "unregistered callers" in refusal(missing, 403)
    wrong = client.post(URL, json=HELLO, headers={"x-goog-api-key": "AIza-wrong"})
    assert refusal(wrong) == "API key not valid. Please pass a valid API key."
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    gemini = post(client, HELLO, "/v1beta2/models/gemini-2.5-flash:generateMessage")
    assert "is not supported for generateMessage" in refusal(gemini, 404)
    assert post(client, HELLO, "/v1beta/models/chat-bison-001:generateMessage").status_code == 404
    assert post(client, HELLO, "/v1beta2/models/chat-bison-001:generateText").status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**HELLO, "maxOutputTokens": 5}, 'Unknown name "maxOutputTokens"'),
        ({"prompt": {**HELLO["prompt"], "system": "x"}}, 'Unknown name "system"'),
        ({"prompt": {"messages": [{"role": "user", "content": "x"}]}}, 'Unknown name "role"'),
        ({**HELLO, "temperature": "hot"}, "(TYPE_FLOAT)"),
        ({**HELLO, "candidateCount": 1.5}, "(TYPE_INT32)"),
        ({**HELLO, "candidateCount": 9}, "candidate_count: must be in the range [1, 8]"),
        ({**HELLO, "candidateCount": 0}, "candidate_count: must be in the range [1, 8]"),
        ({**HELLO, "temperature": 1.5}, "temperature: must be in the range [0.0, 1.0]"),
        ({"prompt": {"messages": []}}, "messages is not specified"),
        ({"prompt": {"context": "x"}}, "messages is not specified"),
        ({}, "prompt is not specified"),
        ({"prompt": {"messages": [{"author": "0"}]}}, "content is not specified"),
        ({"prompt": {"messages": [{"author": "0", "content": 7}]}}, "(TYPE_STRING)"),
        (
            {"prompt": {"messages": [{"author": "0", "content": "a"}] * 2}},
            "alternate between authors",
        ),
    ],
)
def test_google_refuses(client: TestClient, body: dict[str, Any], words: str) -> None:
    assert words in refusal(post(client, body))
