"""OpenAI's legacy ``functions`` / ``function_call`` with the ``openai`` SDK, over an OpenAI
channel (the provider answers in the legacy shape itself) and over families that translate
functions into their own tools (Claude, Gemini): every one answers ``function_call`` with
``finish_reason: "function_call"``, streamed as ``delta.function_call`` pieces, and takes the
``function`` message of the next turn."""

from __future__ import annotations

from typing import Any

import openai
import orjson

from tests.e2e.test_structured_outputs import Served, served

__all__ = ["served"]

WEATHER_FUNCTION: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


async def test_functions_are_answered_with_a_function_call(
    served: Served, client: openai.AsyncOpenAI
) -> None:
    called = await client.chat.completions.create(
        model=served.model, messages=ASK, functions=[WEATHER_FUNCTION]
    )
    choice = called.choices[0]
    assert choice.finish_reason == "function_call"
    assert not choice.message.tool_calls and choice.message.function_call is not None
    call = choice.message.function_call
    assert call.name == "get_weather" and "city" in orjson.loads(call.arguments)

    stream = await client.chat.completions.create(
        model=served.model, messages=ASK, functions=[WEATHER_FUNCTION], stream=True
    )
    name, arguments, finish = "", "", None
    async for chunk in stream:
        for streamed in chunk.choices:
            assert not streamed.delta.tool_calls
            if streamed.delta.function_call is not None:
                name += streamed.delta.function_call.name or ""
                arguments += streamed.delta.function_call.arguments or ""
            finish = streamed.finish_reason or finish
    assert (name, finish) == ("get_weather", "function_call")
    assert orjson.loads(arguments) == orjson.loads(call.arguments)

    answered = await client.chat.completions.create(
        model=served.model,
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "function_call": call.model_dump()},
            {"role": "function", "name": "get_weather", "content": "sunny, 21 C"},
        ],
        functions=[WEATHER_FUNCTION],
    )
    assert answered.choices[0].finish_reason == "stop"
    assert "sunny, 21 C" in (answered.choices[0].message.content or "")


async def test_tools_still_come_back_as_tool_calls(
    served: Served, client: openai.AsyncOpenAI
) -> None:
    tool: Any = {"type": "function", "function": WEATHER_FUNCTION}
    called = await client.chat.completions.create(model=served.model, messages=ASK, tools=[tool])
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.function_call is None
