"""Content logging's redaction: what may be stored of a body (unigate.content_log)."""

from __future__ import annotations

import orjson

from unigate.content_log import REDACTED, redact, wants_content

KEY = "sk-" + "A1b2C3d4" * 6


def test_the_callers_key_and_credential_fields_are_redacted() -> None:
    body = orjson.dumps(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"my key is {KEY}"}],
            "metadata": {"api_key": "sk-other", "Authorization": "Bearer x", "note": "kept"},
            "tools": [{"x-api-key": "abc", "access_token": "t", "password": "p"}],
        }
    )
    text, cut = redact(body, KEY, 16 * 1024)
    assert not cut
    stored = orjson.loads(text)
    assert stored["messages"][0]["content"] == f"my key is {REDACTED}"
    assert stored["metadata"] == {"api_key": REDACTED, "Authorization": REDACTED, "note": "kept"}
    assert set(stored["tools"][0].values()) == {REDACTED}
    for secret in (KEY, "sk-other", "Bearer x", '"abc"'):
        assert secret not in text


def test_non_json_bodies_still_lose_the_key() -> None:
    sse = f'data: {{"choices":[{{"delta":{{"content":"{KEY}"}}}}]}}\n\ndata: [DONE]\n\n'
    text, _ = redact(sse.encode(), KEY, 16 * 1024)
    assert KEY not in text and REDACTED in text and "[DONE]" in text
    text, _ = redact(b"{not json " + KEY.encode(), KEY, 1024)
    assert KEY not in text


def test_bodies_are_cut_at_the_cap_on_a_character_boundary() -> None:
    text, cut = redact(("é" * 100).encode(), "", 51)
    assert cut and text == "é" * 25 and len(text.encode()) <= 51
    text, cut = redact(b"short", "", 51)
    assert (text, cut) == ("short", False)


def test_content_logging_is_on_only_for_listed_keys_and_groups() -> None:
    assert not wants_content(7, "default", "", "")
    assert not wants_content(7, "default", None, None)
    assert wants_content(7, "default", "3, 7", "")
    assert not wants_content(70, "default", "3,7", "")
    assert wants_content(9, "vip", "", "vip,pro")
    assert not wants_content(9, "vipx", "", "vip")
