"""The offline tokenizer: OpenAI's encodings from bundled data, and OpenAI's accounting rules
checked against figures OpenAI publishes."""

from __future__ import annotations

import base64
import io
from typing import Any

import orjson
import pytest
from PIL import Image

from unigate.tokenizer import count_text, encoding_for_model, prompt_tokens
from unigate.tokenizer.bundled import EncodingDataError, _bundled_ranks
from unigate.tokenizer.counting import chat_prompt_tokens
from unigate.tokenizer.images import image_part_tokens, tiles_tokens


def test_bundled_encodings_give_openais_token_ids() -> None:
    # Token ids as tiktoken's own test suite states them.
    assert encoding_for_model("gpt-4").encode("hello world") == [15339, 1917]
    assert encoding_for_model("gpt-4o").encode("hello world") == [24912, 2375]
    assert encoding_for_model("gpt-4o").name == "o200k_base"
    assert encoding_for_model("gpt-3.5-turbo").name == "cl100k_base"
    assert encoding_for_model("text-embedding-3-small").name == "cl100k_base"
    # Models OpenAI does not know get the newest encoding.
    assert encoding_for_model("deepseek-chat").name == "o200k_base"


def test_bundled_data_is_checked_against_tiktokens_hash() -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    with pytest.raises(EncodingDataError, match="expected hash"):
        _bundled_ranks(url, "0" * 64)
    with pytest.raises(EncodingDataError, match="no bundled data"):
        _bundled_ranks("https://example.com/p50k_base.tiktoken", None)


def test_count_text_english_and_chinese() -> None:
    assert count_text("", "gpt-4o") == 0
    assert count_text("Hello, world!", "gpt-4o") == 4
    assert count_text("你好世界", "gpt-4o") == 2
    assert count_text("你好世界", "gpt-4") == 5
    # Special-token markers in user text are plain text, never an error.
    assert count_text("<|endoftext|>", "gpt-4o") > 1


def test_tools_follow_openais_published_example() -> None:
    # OpenAI cookbook, "How to count tokens with tiktoken": this request is 101 prompt
    # tokens on gpt-4o and gpt-4o-mini, as counted by the API.
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {
                            "type": "string",
                            "description": "The city and state, e.g. San Francisco, CA",
                        },
                        "unit": {
                            "type": "string",
                            "description": "The unit of temperature to return",
                            "enum": ["celsius", "fahrenheit"],
                        },
                    },
                    "required": ["location"],
                },
            },
        }
    ]
    messages = [
        {
            "role": "system",
            "content": "You are a helpful assistant that can answer to questions about the "
            "weather.",
        },
        {"role": "user", "content": "What's the weather like in San Francisco?"},
    ]
    assert chat_prompt_tokens(messages, tools, "gpt-4o") == 101
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": messages, "tools": tools})
    assert prompt_tokens("chat.completions", body) == 101


def test_image_tiles_follow_openais_pricing_examples() -> None:
    # OpenAI's vision guide: 1024x1024 high detail is 765 tokens, 2048x4096 is 1105.
    assert tiles_tokens(1024, 1024) == 765
    assert tiles_tokens(2048, 4096) == 1105
    assert image_part_tokens({"image_url": {"url": "x", "detail": "low"}}) == 85


def _data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_inline_image_size_is_read_from_its_header() -> None:
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": _data_url(2048, 4096)}}
    assert image_part_tokens(part) == 1105
    small: dict[str, Any] = {"type": "image_url", "image_url": {"url": _data_url(300, 200)}}
    assert image_part_tokens(small) == 85 + 170
    broken = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert image_part_tokens(broken) == 765  # unreadable: the default size


def test_prompt_tokens_per_endpoint() -> None:
    def body(**fields: Any) -> bytes:
        return orjson.dumps({"model": "gpt-4o", **fields})

    assert prompt_tokens("embeddings", body(input=["hello world", "你好世界"])) == 4
    assert prompt_tokens("embeddings", body(input=[1, 2, 3])) == 3
    assert prompt_tokens("completions", body(prompt="hello world")) == 2
    responses = prompt_tokens("responses", body(input="hello world", instructions="Be brief."))
    assert responses == chat_prompt_tokens(
        [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hello world"},
        ],
        model="gpt-4o",
    )
    assert prompt_tokens("chat.completions", b"not json") is None
    assert prompt_tokens("rerank", body(query="q")) is None
