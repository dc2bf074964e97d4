"""The relay's shared upstream transport (``providers/upstream.py``), the stream translators'
base (``native_stream.ChunkTranslator``) and Anthropic's one error table, against a real
local HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from unigate.anthropic_errors import STATUS_OF_TYPE, status_of_type, type_of_status
from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.native_stream import ChunkTranslator
from unigate_relay.providers.upstream import (
    Answer,
    channel_headers,
    open_upstream,
    read_answer,
    read_refusal,
)


async def _echo(request: web.Request) -> web.Response:
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-")}
    return web.json_response({"headers": headers, "query": dict(request.query)})


async def _garbled(request: web.Request) -> web.Response:
    return web.Response(status=200, body=b"{not json", content_type="application/json")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.5)
    return web.json_response({})


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/echo", _echo)
    app.router.add_post("/garbled", _garbled)
    app.router.add_post("/slow", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _ctx(
    http: aiohttp.ClientSession, *, headers_json: str = "", timeout_ms: int = 0
) -> CallContext:
    return CallContext(
        request=relay_pb2.RelayRequest(endpoint="chat.completions", body=b"{}"),
        channel=auth_pb2.Channel(
            id=1,
            type=1,
            keys=["sk-secret-abcdef"],
            headers_json=headers_json,
            timeout_ms=timeout_ms,
        ),
        api_key="sk-secret-abcdef",
        http=http,
    )


async def test_channel_headers_sit_between_defaults_and_authentication(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        ctx = _ctx(http, headers_json='{"X-Default": "operator", "X-Auth": "operator", "X-Own": 1}')
        headers = channel_headers(ctx, {"X-Default": "adapter"}, {"X-Auth": "key"})
        assert headers == {"X-Default": "operator", "X-Auth": "key", "X-Own": "1"}
        # An empty object or no headers at all leave the adapter's as they are.
        assert channel_headers(_ctx(http, headers_json="{}"), {"A": "1"}) == {"A": "1"}
        answer = await read_answer(
            open_upstream(ctx, base_url + "/echo", data=b"{}", headers=headers, params={"q": "v"})
        )
        assert isinstance(answer, Answer)
        assert answer.status == 200
        seen: dict[str, Any] = answer.json_object() or {}
        assert seen["headers"] == {"X-Default": "operator", "X-Auth": "key", "X-Own": "1"}
        assert seen["query"] == {"q": "v"}


async def test_undecodable_answer_and_one_unreadable_error(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        ctx = _ctx(http)
        answer = await read_answer(open_upstream(ctx, base_url + "/garbled", data=b"", headers={}))
        assert isinstance(answer, Answer)
        assert answer.json() is None and answer.json_object() is None
        failed = answer.unreadable()
        assert failed.error.error.http_status == 502
        assert failed.error.error.code == "bad_upstream_response"
        assert failed.error.retryable and failed.error.upstream_status == 200


async def test_first_byte_timeout_is_the_channels(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        result = await read_answer(
            open_upstream(_ctx(http, timeout_ms=200), base_url + "/slow", data=b"", headers={})
        )
        assert isinstance(result, relay_pb2.RelayResult)
        assert result.error.error.code == "upstream_timeout"
        assert result.error.error.http_status == 504


async def test_upstream_failure_scrubs_the_channel_key(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        ctx = _ctx(http)
        body = orjson.dumps({"error": {"message": "bad key sk-secret-abcdef", "code": "x"}})
        answer = Answer(500, http.headers, body, 7)  # type: ignore[arg-type]
        failed = answer.upstream_failure(ctx)
        assert "sk-secret-abcdef" not in failed.error.error.message
        assert failed.upstream_ms == 7 and failed.error.upstream_status == 500


async def test_refusal_is_read_and_released(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await open_upstream(_ctx(http), base_url + "/echo", data=b"", headers={})
        refusal = await read_refusal(resp)
        assert isinstance(refusal, Answer) and refusal.json_object() is not None
        assert resp.closed


class _Plain(ChunkTranslator):
    def feed(self, payload: dict[str, Any]) -> bytes:
        out = self.delta(str(payload.get("text") or ""), payload.get("calls"))
        if payload.get("end"):
            out += self.finish("stop")
        return out


def _chunks(frames: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in frames.split(b"\n\n") if line.startswith(b"data: ")]


def test_chunk_translator_opens_once_and_finishes() -> None:
    translator = _Plain(id="chatcmpl-1", model="m", created=1)
    first = _chunks(translator.feed({"text": "Hel"}))
    assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert first[0]["id"] == "chatcmpl-1" and first[0]["model"] == "m"
    assert translator.feed({"text": ""}) == b""  # nothing new: no frame
    calls = [
        {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    second = _chunks(translator.feed({"calls": calls, "end": True}))
    assert second[0]["choices"][0]["delta"] == {"tool_calls": calls}
    assert second[1]["choices"][0]["finish_reason"] == "stop"
    assert translator.finished and "".join(translator.text) == "Helf{}"


def test_anthropic_error_table_both_ways() -> None:
    for etype, status in STATUS_OF_TYPE.items():
        assert type_of_status(status) == etype
        assert status_of_type(etype) == status
    assert type_of_status(431) == "invalid_request_error"
    assert type_of_status(502) == "api_error"
    assert status_of_type("something_new") == 500
