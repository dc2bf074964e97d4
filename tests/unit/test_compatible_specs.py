"""The OpenAI-like providers' wire details: URLs per channel type, fields dropped from the
body, and where stream usage is found."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import orjson
import pytest

from unigate.channel_types import CHANNEL_TYPES
from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.compatible import SPECS
from unigate_relay.providers.openai import OpenAIProvider
from unigate_relay.providers.openai.usage import usage_from_answer, usage_from_stream_event


def ctx(
    channel_type: int,
    base_url: str = "",
    endpoint: str = "chat.completions",
    body: dict[str, Any] | None = None,
    *,
    model: str = "m",
    upstream_model: str = "m",
    include_usage: bool = False,
) -> CallContext:
    raw = orjson.dumps(body if body is not None else {"model": model, "messages": []})
    return CallContext(
        request=relay_pb2.RelayRequest(
            endpoint=endpoint,
            channel_type=channel_type,
            body=raw,
            model=model,
            upstream_model=upstream_model,
            include_usage=include_usage,
        ),
        channel=auth_pb2.Channel(type=channel_type, base_url=base_url, keys=["k"]),
        api_key="k",
        http=cast(aiohttp.ClientSession, None),  # not used to build requests
    )


@pytest.mark.parametrize(
    ("channel_type", "base_url", "endpoint", "url"),
    [
        (1, "", "chat.completions", "https://api.openai.com/v1/chat/completions"),
        (1, "https://proxy.example/", "embeddings", "https://proxy.example/v1/embeddings"),
        (8, "http://10.0.0.1:8000", "chat.completions", "http://10.0.0.1:8000/v1/chat/completions"),
        # Type 50's base URL names its version: nothing is added to it.
        (50, "https://host.example/v1/", "embeddings", "https://host.example/v1/embeddings"),
        (
            50,
            "https://open.bigmodel.cn/api/paas/v4",
            "chat.completions",
            "https://open.bigmodel.cn/api/paas/v4/chat/completions",
        ),
        (36, "", "chat.completions", "https://api.deepseek.com/chat/completions"),
        (25, "", "chat.completions", "https://api.moonshot.cn/v1/chat/completions"),
        (16, "", "chat.completions", "https://open.bigmodel.cn/api/paas/v4/chat/completions"),
        (16, "", "embeddings", "https://open.bigmodel.cn/api/paas/v4/embeddings"),
        (
            17,
            "",
            "chat.completions",
            "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions",
        ),
        (19, "", "chat.completions", "https://ai.360.cn/v1/chat/completions"),
        (28, "", "chat.completions", "https://api.mistral.ai/v1/chat/completions"),
        (29, "", "chat.completions", "https://api.groq.com/openai/v1/chat/completions"),
        (30, "", "chat.completions", "http://localhost:11434/v1/chat/completions"),
        (45, "", "chat.completions", "https://api.x.ai/v1/chat/completions"),
        (44, "", "rerank", "https://api.siliconflow.cn/v1/rerank"),
        (39, "", "chat.completions", "https://api.together.xyz/v1/chat/completions"),
        (20, "", "chat.completions", "https://openrouter.ai/api/v1/chat/completions"),
        (32, "", "chat.completions", "https://api.stepfun.com/v1/chat/completions"),
        (31, "", "chat.completions", "https://api.lingyiwanwu.com/v1/chat/completions"),
        (40, "", "chat.completions", "https://ark.cn-beijing.volces.com/api/v3/chat/completions"),
        (26, "", "embeddings", "https://api.baichuan-ai.com/v1/embeddings"),
        (
            49,
            "",
            "chat.completions",
            "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions",
        ),
        (
            51,
            "",
            "chat.completions",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        # An operator's base URL replaces the default; the provider's layout stays.
        (
            16,
            "http://sim:9/api/paas/v4/",
            "chat.completions",
            "http://sim:9/api/paas/v4/chat/completions",
        ),
        (30, "http://gpu-box:11434/v1", "embeddings", "http://gpu-box:11434/v1/embeddings"),
    ],
)
def test_urls_per_channel_type(channel_type: int, base_url: str, endpoint: str, url: str) -> None:
    assert OpenAIProvider()._url(ctx(channel_type, base_url, endpoint)) == url


def test_every_spec_is_a_registered_channel_type_of_the_openai_family() -> None:
    for type_id, spec in SPECS.items():
        assert spec.channel_type == type_id
        assert CHANNEL_TYPES[type_id].family == "openai"
        # Azure has no default: every resource has its own endpoint.
        assert spec.default_base_url.startswith(("https://", "http://localhost")) or type_id == 3
        assert "chat.completions" in spec.endpoints
    assert set(OpenAIProvider.channel_types) == {1, 8, 50, *SPECS}
    assert {t for t, ct in CHANNEL_TYPES.items() if ct.family == "openai"} == {1, 8, 50, *SPECS}


def _sent(c: CallContext, *, stream: bool) -> dict[str, Any]:
    body = OpenAIProvider()._body(c, stream=stream)
    assert isinstance(body, bytes)
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed


def test_stream_options_are_dropped_for_mistral_and_added_elsewhere() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    mistral = _sent(ctx(28, body=body, include_usage=True), stream=True)
    assert "stream_options" not in mistral
    assert mistral["messages"] == body["messages"]
    # Without the client asking, Mistral is not asked either (it reports usage by itself)...
    no_option = {k: v for k, v in body.items() if k != "stream_options"}
    assert "stream_options" not in _sent(ctx(28, body=no_option), stream=True)
    # ...while DeepSeek and Groq are asked for usage like OpenAI.
    for channel_type in (36, 29, 1):
        sent = _sent(ctx(channel_type, body=no_option), stream=True)
        assert sent["stream_options"] == {"include_usage": True}


def test_unchanged_bodies_pass_through_as_bytes() -> None:
    c = ctx(36)
    assert OpenAIProvider()._body(c, stream=False) == c.request.body


def test_model_mapping_still_applies_with_dropped_fields() -> None:
    c = ctx(28, body={"model": "alias", "messages": []}, model="alias", upstream_model="real")
    assert _sent(c, stream=False)["model"] == "real"


def test_groq_usage_in_x_groq_is_found_only_with_the_path() -> None:
    chunk = orjson.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {
                "id": "req_1",
                "usage": {
                    "queue_time": 0.01,
                    "prompt_tokens": 38,
                    "prompt_time": 0.001,
                    "completion_tokens": 4,
                    "completion_time": 0.02,
                    "total_tokens": 42,
                    "total_time": 0.03,
                },
            },
        }
    )
    assert usage_from_stream_event(chunk) is None
    found = usage_from_stream_event(chunk, SPECS[29].stream_usage_path)
    assert found is not None
    usage, usage_only = found
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (38, 4, 42)
    assert not usage_only  # the chunk carries the finish_reason: clients must see it


def test_top_level_usage_wins_over_the_path() -> None:
    chunk = orjson.dumps(
        {
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            "x_groq": {"usage": {"prompt_tokens": 50, "completion_tokens": 10}},
        }
    )
    found = usage_from_stream_event(chunk, ("x_groq", "usage"))
    assert found is not None and found[0].prompt_tokens == 5 and found[1]


def test_deepseek_cache_hits_count_as_cached_tokens() -> None:
    answer = orjson.dumps(
        {
            "choices": [{"message": {"content": "x"}}],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "total_tokens": 107,
                "prompt_cache_hit_tokens": 64,
                "prompt_cache_miss_tokens": 36,
            },
        }
    )
    usage = usage_from_answer("chat.completions", b"{}", "application/json", answer)
    assert (usage.prompt_tokens, usage.cached_tokens, usage.estimated) == (100, 64, False)


async def test_unsupported_endpoints_are_refused_before_calling_the_provider() -> None:
    result = await OpenAIProvider().call(ctx(36, endpoint="images.generations"))
    assert result.error.error.http_status == 400
    assert result.error.error.code == "unsupported_endpoint"
    ends = [c async for c in OpenAIProvider().stream(ctx(25, endpoint="embeddings"))]
    assert len(ends) == 1 and ends[0].end.error.error.code == "unsupported_endpoint"


def test_moonshot_top_level_cached_tokens_count_as_cached() -> None:
    answer = orjson.dumps(
        {
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "total_tokens": 12,
                "cached_tokens": 4,
            }
        }
    )
    usage = usage_from_answer("chat.completions", b"{}", "application/json", answer)
    assert usage.cached_tokens == 4


def test_moonshot_usage_inside_the_finish_choice_is_found() -> None:
    chunk = orjson.dumps(
        {
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {},
                    "finish_reason": "stop",
                    "usage": {"prompt_tokens": 19, "completion_tokens": 13, "total_tokens": 32},
                }
            ],
        }
    )
    assert usage_from_stream_event(chunk) is None
    found = usage_from_stream_event(chunk, SPECS[25].stream_usage_path)
    assert found is not None
    usage, usage_only = found
    assert (usage.prompt_tokens, usage.completion_tokens) == (19, 13) and not usage_only
    # A chunk without choices, or with an empty list, has no usage there.
    assert (
        usage_from_stream_event(b'{"choices": [], "usage": null}', ("choices", "0", "usage"))
        is None
    )


def _upstream(status: int, body: dict[str, Any]) -> Any:
    from multidict import CIMultiDict, CIMultiDictProxy

    from unigate_relay.providers.base import error_from_upstream

    return error_from_upstream(status, orjson.dumps(body), CIMultiDictProxy(CIMultiDict()), ["k"])


def test_a_400_refusing_the_key_is_the_channels_fault() -> None:
    # xAI: {"code": ..., "error": "Incorrect API key provided: xa***Q6. ..."} with HTTP 400.
    err = _upstream(
        400,
        {
            "code": "Client specified an invalid argument",
            "error": "Incorrect API key provided: xa***Q6. You can obtain an API key from "
            "https://console.x.ai.",
        },
    )
    assert (err.error.http_status, err.error.code) == (502, "upstream_auth_failed")
    assert err.fatal and err.retryable
    other = _upstream(400, {"code": "Client specified an invalid argument", "error": "bad n"})
    assert (other.error.http_status, other.error.message, other.fatal) == (400, "bad n", False)


def test_payment_required_disables_the_channel() -> None:
    err = _upstream(402, {"error": {"code": 402, "message": "Insufficient credits"}})
    assert (err.error.http_status, err.error.code, err.fatal) == (
        502,
        "upstream_quota_exhausted",
        True,
    )


def test_mistral_422_detail_becomes_a_readable_message() -> None:
    err = _upstream(
        422,
        {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "stream_options", "include_usage"],
                        "msg": "Extra inputs are not permitted",
                        "input": True,
                    }
                ]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    assert err.error.http_status == 422
    assert err.error.message == "stream_options.include_usage: Extra inputs are not permitted"
    assert err.error.type == "invalid_request_error"
