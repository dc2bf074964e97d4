"""The Qianfan simulator refuses what Qianfan refuses (token exchange, access tokens, ERNIE's
turn rules and ranges, in HTTP 200 ``error_code`` bodies), and the relay's access-token cache
exchanges once per key pair however many calls race for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from tests.unit.test_openai_simulator import ThreadedServer
from unigate_relay.providers.baidu.convert import chat_body
from unigate_relay.providers.baidu.errors import map_error
from unigate_relay.providers.baidu.token import AccessTokens, TokenError
from unigate_sim.baidu import create_baidu_app

AK, SK = "ak-test", "sk-test-secret"
CHAT = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_baidu_app({AK: SK})) as running:
        yield running


@pytest.fixture
def app(server: ThreadedServer) -> Starlette:
    for name in ("calls", "token_calls", "fail_next"):
        getattr(server.app.state, name).clear()
    server.app.state.tokens.clear()
    return server.app


def token(http: httpx.Client, ak: str = AK, sk: str = SK) -> httpx.Response:
    return http.post(
        "/oauth/2.0/token",
        params={"grant_type": "client_credentials", "client_id": ak, "client_secret": sk},
    )


@pytest.fixture
def http(server: ThreadedServer, app: Starlette) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        yield client


def chat(http: httpx.Client, body: dict[str, Any], access_token: str | None = "fresh") -> Any:
    if access_token == "fresh":
        access_token = token(http).json()["access_token"]
    params = {"access_token": access_token} if access_token else {}
    answer = http.post(CHAT, params=params, json=body)
    assert answer.status_code == 200  # Qianfan errors are never HTTP errors
    return answer.json()


def test_token_exchange_checks_the_pair(http: httpx.Client) -> None:
    ok = token(http)
    assert ok.status_code == 200 and ok.json()["expires_in"] == 2592000
    unknown = token(http, ak="nobody")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    wrong = token(http, sk="wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error_description"] == "Client authentication failed"


def test_access_tokens_missing_unknown_and_expired(http: httpx.Client, app: Starlette) -> None:
    hello = {"messages": [{"role": "user", "content": "hi"}]}
    assert chat(http, hello, access_token=None)["error_code"] == 110
    assert chat(http, hello, access_token="24.forged")["error_code"] == 110
    fresh = token(http).json()["access_token"]
    assert chat(http, hello, access_token=fresh)["result"] == "Echo: hi"
    app.state.tokens[fresh] = time.time() - 1
    assert chat(http, hello, access_token=fresh) == {
        "error_code": 111,
        "error_msg": "Access token expired",
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "empty"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "odd number",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            },
            "odd index",
        ),
        ({"messages": [{"role": "system", "content": "a"}]}, "even index"),
        ({"messages": [{"role": "user", "content": "  "}]}, "empty"),
        ({"messages": [{"role": "user", "content": "a"}], "temperature": 0}, "temperature"),
        ({"messages": [{"role": "user", "content": "a"}], "max_output_tokens": 1}, "max_output"),
        ({"messages": [{"role": "user", "content": "a"}], "model": "ernie"}, "model"),
        ({"messages": [{"role": "user", "content": "a"}], "stop": ["x"] * 5}, "stop"),
    ],
)
def test_ernie_rules_are_336003(http: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    answer = chat(http, body)
    assert answer["error_code"] == 336003
    assert fragment in answer["error_msg"]


def test_stream_format(http: httpx.Client) -> None:
    access = token(http).json()["access_token"]
    body = {"messages": [{"role": "user", "content": "hello world"}], "stream": True}
    with http.stream("POST", CHAT, params={"access_token": access}, json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    parsed = [orjson.loads(e.removeprefix("data: ")) for e in events]
    assert "".join(p["result"] for p in parsed) == "Echo: hello world"
    assert [p["sentence_id"] for p in parsed] == list(range(len(parsed)))
    assert [p["is_end"] for p in parsed] == [False] * (len(parsed) - 1) + [True]


async def test_one_exchange_for_many_racing_calls(server: ThreadedServer, app: Starlette) -> None:
    tokens = AccessTokens()
    async with aiohttp.ClientSession() as session:
        got = await asyncio.gather(
            *(tokens.get(session, server.url, f"{AK}|{SK}", 5) for _ in range(20))
        )
        assert len(set(got)) == 1 and tokens.exchanges == 1
        assert len(app.state.token_calls) == 1
        tokens.invalidate(server.url, f"{AK}|{SK}", got[0])
        again = await tokens.get(session, server.url, f"{AK}|{SK}", 5)
        assert again != got[0] and tokens.exchanges == 2
        with pytest.raises(TokenError) as refused:
            await tokens.get(session, server.url, f"{AK}|wrong", 5)
        assert refused.value.rejected
        with pytest.raises(TokenError):
            await tokens.get(session, server.url, "no-separator", 5)


def test_request_translation_follows_ernie_rules() -> None:
    body = chat_body(
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
            ],
            "temperature": 1.6,
            "max_tokens": 1,
            "stop": "END",
            "user": "u1",
        },
        stream=False,
    )
    assert body == {
        "messages": [{"role": "user", "content": "a\n\nb"}],
        "system": "sys",
        "temperature": 1.0,
        "max_output_tokens": 2,
        "stop": ["END"],
        "user_id": "u1",
    }


@pytest.mark.parametrize(
    ("code", "status", "fatal", "retryable"),
    [
        (110, 502, True, True),
        (14, 502, True, True),
        (17, 502, True, True),
        (18, 429, False, True),
        (336501, 429, False, True),
        (336003, 400, False, False),
        (336100, 503, False, True),
    ],
)
def test_error_codes_map(code: int, status: int, fatal: bool, retryable: bool) -> None:
    error = map_error(code, "msg", [])
    assert (error.error.http_status, error.fatal, error.retryable) == (status, fatal, retryable)
