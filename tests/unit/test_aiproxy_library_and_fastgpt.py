"""The pure parts of AI Proxy Library (type 21) and FastGPT (type 22): the ask body, the
library id, One API's reference list, and both providers' error envelopes mapped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from unigate_relay.providers.aiproxy_library.errors import error_of
from unigate_relay.providers.aiproxy_library.stream import LibraryTranslator
from unigate_relay.providers.aiproxy_library.wire import (
    Unsupported,
    ask_body,
    library_id,
    references,
)
from unigate_relay.providers.compatible.fastgpt import SPEC, fastgpt_error


def test_library_id_from_the_channel_config() -> None:
    assert library_id('{"library_id": " lib-1 "}') == "lib-1"
    assert library_id('{"library_id": 42}') == "42"
    for config in ("", "{}", '{"library_id": ""}', '{"library_id": true}', "[1]", "not json"):
        assert library_id(config) == "", config


def test_ask_body_takes_the_last_user_message_only() -> None:
    chat: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
            },
        ]
    }
    assert ask_body(chat, "gpt-4", "lib", stream=True) == {
        "model": "gpt-4",
        "query": "second",
        "libraryId": "lib",
        "stream": True,
    }
    refused = [
        {"messages": []},
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "  "}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
    ]
    for body in refused:
        with pytest.raises(Unsupported):
            ask_body(body, "gpt-4", "lib", stream=False)


def test_references_as_one_api_lists_them() -> None:
    docs = [{"title": "A", "url": "https://a"}, "junk", {"title": "B", "url": "https://b"}]
    assert references(docs) == "\n\n参考文档\uff1a\n1. [A](https://a)\n2. [B](https://b)\n"
    assert references([]) == references(None) == ""


def test_stream_puts_the_references_before_the_finish() -> None:
    translator = LibraryTranslator(id="c1", model="gpt-4", created=1)
    out = translator.feed({"content": "Hi", "finish": False, "documents": []})
    out += translator.feed(
        {"content": "", "finish": True, "documents": [{"title": "A", "url": "u"}]}
    )
    frames = [orjson.loads(f[6:]) for f in out.split(b"\n\n") if f.startswith(b"data: ")]
    deltas = [f["choices"][0]["delta"] for f in frames]
    assert deltas == [
        {"role": "assistant", "content": "Hi"},
        {"content": "\n\n参考文档\uff1a\n1. [A](u)\n"},
        {},
    ]
    assert frames[-1]["choices"][0]["finish_reason"] == "stop" and translator.finished
    assert translator.text == ["Hi"]  # the estimate counts the answer, not the list


def test_library_errors() -> None:
    assert error_of({"success": True, "answer": "x", "errCode": 0}, 200, []) is None
    refused = error_of(
        {"success": False, "errCode": 401, "message": "bad key k-123456"}, 401, ["k-123456"]
    )
    assert refused is not None and refused.fatal and refused.error.code == "upstream_auth_failed"
    assert "k-123456" not in refused.error.message
    limited = error_of({"success": False, "errCode": 429, "message": "slow"}, 200, [])
    assert limited is not None and limited.error.http_status == 429 and limited.retryable
    mistake = error_of({"success": False, "errCode": 400, "message": "bad"}, 400, [])
    assert mistake is not None and mistake.error.http_status == 400 and not mistake.retryable
    failed = error_of(None, 503, [])
    assert failed is not None and failed.error.http_status == 502 and failed.retryable


def test_fastgpt_usage_is_not_read_and_its_envelope_is_mapped() -> None:
    assert not SPEC.reports_usage and not SPEC.asks_stream_usage
    assert SPEC.url("", "chat.completions") == "https://fastgpt.run/api/openapi/v1/chat/completions"

    def body(code: int, text: str) -> bytes:
        return orjson.dumps({"code": code, "statusText": text, "message": "m", "data": None})

    key = fastgpt_error(500, body(514, "unAuthApiKey"), [])
    assert key is not None and key.fatal and key.error.code == "upstream_auth_failed"
    spent = fastgpt_error(500, body(510, "insufficientQuota"), [])
    assert spent is not None and spent.error.code == "upstream_quota_exhausted"
    other = fastgpt_error(500, body(500, "error"), [])
    assert other is not None and other.retryable and other.error.http_status == 502
    assert fastgpt_error(400, b'{"error": {"message": "x"}}', []) is None  # the shared table


def test_the_library_simulator_takes_exactly_the_ask_body() -> None:
    from starlette.testclient import TestClient

    from unigate_sim.aiproxy_library import create_aiproxy_library_app

    good = {"model": "gpt-4", "query": "hi", "libraryId": "7", "stream": False}
    auth = {"Authorization": "Bearer k"}
    with TestClient(create_aiproxy_library_app({"k"}, {"7": []})) as sim:
        ok = sim.post("/api/library/ask", json=good, headers=auth)
        assert ok.json() == {
            "success": True,
            "answer": "Echo: hi",
            "documents": [],
            "errCode": 0,
            "message": "",
        }
        refusals = [
            ({**good, "library_id": "7"}, 400, "unknown field(s): library_id"),
            ({k: v for k, v in good.items() if k != "stream"}, 400, "missing field(s): stream"),
            ({**good, "stream": "yes"}, 400, "stream must be a boolean"),
            ({**good, "query": ""}, 400, "query must be a non-empty string"),
            ({**good, "libraryId": "8"}, 404, "library 8 does not exist or is not yours"),
        ]
        for body, status, message in refusals:
            got = sim.post("/api/library/ask", json=body, headers=auth)
            assert (got.status_code, got.json()) == (
                status,
                {"success": False, "errCode": status, "message": message},
            )
        wrong = sim.post("/api/library/ask", json=good, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and wrong.json()["errCode"] == 401
        assert sim.post("/api/library/query", json=good, headers=auth).status_code == 404
