"""The OpenAI-like provider simulators are strict: each serves only its own paths, refuses a
wrong key, an unknown model and the fields or image parts its provider refuses, in that
provider's own words and status, and frames stream usage where that provider does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from unigate_sim.compatible import PROFILES, Profile, ProviderError, create_compatible_app

KEY = "sk-sim-" + "u" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}
NAMES = sorted(PROFILES)


@pytest.fixture(params=NAMES)
def provider(request: pytest.FixtureRequest) -> Iterator[tuple[Profile, TestClient]]:
    name: str = request.param
    with TestClient(create_compatible_app(name, {KEY})) as client:
        yield PROFILES[name], client


def chat_path(profile: Profile) -> str:
    return profile.prefixes[-1] + "/chat/completions"


def hello(profile: Profile, **extra: Any) -> dict[str, Any]:
    return {
        "model": profile.chat_models[0],
        "messages": [{"role": "user", "content": "hello there"}],
        **extra,
    }


def frames(text: str) -> list[Any]:
    payloads = [f[len("data: ") :] for f in text.split("\n\n") if f.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [orjson.loads(p) for p in payloads[:-1]]


def refusal(profile: Profile, kind: Any, **names: str) -> tuple[int, Any]:
    return profile.rendered(kind, **names)


def answer(response: Any) -> tuple[int, Any]:
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def test_serves_its_own_paths_and_nothing_else(provider: tuple[Profile, TestClient]) -> None:
    profile, client = provider
    assert client.post(chat_path(profile), json=hello(profile), headers=AUTH).status_code == 200
    foreign = "/api/paas/v4" if profile.name != "zhipu" else "/v1"
    path = foreign + "/chat/completions"
    if path != chat_path(profile) and not any(path.startswith(p) for p in profile.prefixes[:1]):
        got = client.post(path, json=hello(profile), headers=AUTH)
        expected = refusal(profile, "invalid_url", method="POST", path=path)
        assert answer(got) == expected
    unserved = profile.prefixes[-1] + "/audio/speech"
    assert client.post(unserved, json={}, headers=AUTH).status_code == 404


def test_refuses_a_wrong_key_in_its_own_words(provider: tuple[Profile, TestClient]) -> None:
    profile, client = provider
    wrong = {"Authorization": "Bearer sk-wrong-0000000000"}
    got = client.post(chat_path(profile), json=hello(profile), headers=wrong)
    if not profile.checks_key:
        assert got.status_code == 200  # Ollama: "required but ignored"
        return
    assert answer(got) == refusal(profile, "auth", key="sk***00")
    assert client.app.state.calls == []  # type: ignore[attr-defined]


def test_refuses_an_unknown_model_in_its_own_words(
    provider: tuple[Profile, TestClient],
) -> None:
    profile, client = provider
    got = client.post(chat_path(profile), json=hello(profile, model="nope-1"), headers=AUTH)
    if profile.reads_only is not None and "model" not in profile.reads_only:
        # FastGPT: the app decides the model; any name is answered.
        assert got.status_code == 200 and got.json()["choices"][0]["message"]["content"]
        return
    assert answer(got) == refusal(profile, "model_not_found", model="nope-1")


def test_validation_errors_of_the_openai_simulator_are_reworded(
    provider: tuple[Profile, TestClient],
) -> None:
    profile, client = provider
    bad = hello(profile, temperature="hot")
    if profile.reads_only is not None and "temperature" not in profile.reads_only:
        # FastGPT ignores the field; what it does read is still checked, in its own shape.
        assert client.post(chat_path(profile), json=bad, headers=AUTH).status_code == 200
        bad = hello(profile, messages="hello there")
        got = client.post(chat_path(profile), json=bad, headers=AUTH)
        expected = profile.render_error(ProviderError(400, "invalid_request", "x"))
        assert got.status_code == expected[0] and "messages" in got.json()["message"]
        assert set(got.json()) == set(orjson.loads(expected[1]))
        return
    if profile.check_body is not None:  # Mistral checks its schema first; temperature is in it
        assert profile.check_body("/chat/completions", bad) is None
    got = client.post(chat_path(profile), json=bad, headers=AUTH)
    status, body = answer(got)
    assert status == 400 and "temperature" in got.text
    # The provider's error shape, not OpenAI's (unless the provider copied it).
    _, shape = profile.render_error(ProviderError(400, "invalid_request", "x", "temperature"))
    expected = orjson.loads(shape)
    if isinstance(expected, list):  # Google's OpenAI layer: the error object in a list
        assert isinstance(body, list) and len(body) == len(expected) == 1
        body, expected = body[0]["error"], expected[0]["error"]
    assert set(body) == set(expected)


def test_image_parts_only_for_vision_models(provider: tuple[Profile, TestClient]) -> None:
    profile, client = provider
    if profile.vision_models is None:
        pytest.skip("every model of this provider takes images")
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    text_model = next(m for m in profile.chat_models if m not in profile.vision_models)
    body = {"model": text_model, "messages": [{"role": "user", "content": content}]}
    got = client.post(chat_path(profile), json=body, headers=AUTH)
    assert answer(got) == refusal(profile, "image_unsupported", model=text_model)
    for model in profile.vision_models:
        seen = client.post(chat_path(profile), json={**body, "model": model}, headers=AUTH)
        assert seen.status_code == 200


def test_stream_usage_is_where_the_provider_puts_it(
    provider: tuple[Profile, TestClient],
) -> None:
    profile, client = provider
    for asked in (False, True):
        extra: dict[str, Any] = {"stream": True}
        if asked and profile.name != "mistral":
            extra["stream_options"] = {"include_usage": True}
        got = client.post(chat_path(profile), json=hello(profile, **extra), headers=AUTH)
        assert got.status_code == 200
        chunks = frames(got.text)
        finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
        usage_chunks = [c for c in chunks if c.get("usage")]
        mode = profile.stream_usage
        if mode == "asked":
            assert [c["choices"] for c in usage_chunks] == ([[]] if asked else [])
        elif mode == "always":
            assert [c["choices"] for c in usage_chunks] == [[]]
        elif mode == "last_chunk":
            assert usage_chunks == [finish]
        elif mode == "never":
            assert usage_chunks == [] and all("x_groq" not in c for c in chunks)
        elif mode == "choice":
            assert usage_chunks == [] and finish["choices"][0]["usage"]["completion_tokens"] > 0
        else:
            assert usage_chunks == [] and finish["x_groq"]["usage"]["completion_tokens"] > 0


def test_mistral_forbids_fields_outside_its_schema() -> None:
    profile = PROFILES["mistral"]
    with TestClient(create_compatible_app("mistral", {KEY})) as client:
        options = {"stream": True, "stream_options": {"include_usage": True}}
        got = client.post(chat_path(profile), json=hello(profile, **options), headers=AUTH)
        assert got.status_code == 422
        detail = got.json()["message"]["detail"]
        assert detail == [
            {
                "type": "extra_forbidden",
                "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted",
                "input": {"include_usage": True},
            }
        ]
        # Its own fields are accepted, and a foreign tool call id is refused.
        assert (
            client.post(
                chat_path(profile), json=hello(profile, random_seed=7), headers=AUTH
            ).status_code
            == 200
        )
        tool_turn = hello(profile)
        tool_turn["messages"] = [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc", "content": "sunny"},
        ]
        refused = client.post(chat_path(profile), json=tool_turn, headers=AUTH)
        assert refused.status_code == 400
        assert "must be a-z, A-Z, 0-9, with a length of 9" in refused.json()["message"]


def test_openrouter_stream_opens_with_a_comment_and_always_ends_with_usage() -> None:
    profile = PROFILES["openrouter"]
    with TestClient(create_compatible_app("openrouter", {KEY})) as client:
        got = client.post(chat_path(profile), json=hello(profile, stream=True), headers=AUTH)
        assert got.text.startswith(": OPENROUTER PROCESSING\n\n")
        assert frames(got.text)[-1]["choices"] == []


def test_doubao_serves_endpoint_ids_and_calls_record_provider_paths() -> None:
    profile = PROFILES["doubao"]
    with TestClient(create_compatible_app("doubao", {KEY})) as client:
        ok = client.post(
            "/api/v3/chat/completions", json=hello(profile, model="ep-20240101-abcde"), headers=AUTH
        )
        assert ok.json()["model"] == "ep-20240101-abcde"
        emb = client.post(
            "/api/v3/embeddings", json={"model": "ep-20240101-embed", "input": "x"}, headers=AUTH
        )
        assert emb.json()["model"] == "ep-20240101-embed"
        calls = client.app.state.calls  # type: ignore[attr-defined]
        assert [c["path"] for c in calls] == ["/api/v3/chat/completions", "/api/v3/embeddings"]
        refused = client.post("/api/v3/chat/completions", json=hello(profile, model="doubao-pro"))
        assert refused.json()["error"]["code"] == "AuthenticationError"
