"""Channel types (One API's numbers) and the relay family that serves each.

A family is one relay deployment (``unigate-relay --providers openai``); the gateway sends a
call to the relay of the candidate channel's family. What a type means on the wire (default
base URL, path layout, quirks) belongs to the relay that serves it (for the "openai" family:
``unigate_relay.providers.compatible``), not to this shared library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelType:
    id: int
    name: str
    family: str


CHANNEL_TYPES: dict[int, ChannelType] = {
    t.id: t
    for t in (
        ChannelType(1, "OpenAI", "openai"),
        ChannelType(3, "Azure OpenAI", "openai"),
        ChannelType(8, "OpenAI-compatible", "openai"),
        ChannelType(16, "Zhipu GLM v4", "openai"),
        ChannelType(17, "Qwen (DashScope compatible mode)", "openai"),
        ChannelType(19, "360 Zhinao", "openai"),
        ChannelType(20, "OpenRouter", "openai"),
        ChannelType(25, "Moonshot", "openai"),
        ChannelType(28, "Mistral", "openai"),
        ChannelType(29, "Groq", "openai"),
        ChannelType(30, "Ollama", "openai"),
        ChannelType(31, "Lingyi Wanwu", "openai"),
        ChannelType(32, "StepFun", "openai"),
        ChannelType(36, "DeepSeek", "openai"),
        ChannelType(39, "Together", "openai"),
        ChannelType(40, "Doubao (Volcengine Ark)", "openai"),
        ChannelType(44, "SiliconFlow", "openai"),
        ChannelType(45, "xAI", "openai"),
    )
}


def channel_type(type_id: int) -> ChannelType | None:
    return CHANNEL_TYPES.get(type_id)
