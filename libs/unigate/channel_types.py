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
    # Its provider is called over WebSocket (its base URL may be ws:// or wss://).
    websocket: bool = False


CHANNEL_TYPES: dict[int, ChannelType] = {
    t.id: t
    for t in (
        ChannelType(1, "OpenAI", "openai"),
        ChannelType(3, "Azure OpenAI", "openai"),
        ChannelType(8, "OpenAI-compatible", "openai"),
        ChannelType(14, "Anthropic Claude", "anthropic"),
        ChannelType(15, "Baidu ERNIE (Qianfan)", "baidu"),
        ChannelType(16, "Zhipu GLM v4", "openai"),
        ChannelType(17, "Qwen (DashScope compatible mode)", "openai"),
        ChannelType(18, "iFlytek Spark", "spark", websocket=True),
        ChannelType(19, "360 Zhinao", "openai"),
        ChannelType(20, "OpenRouter", "openai"),
        ChannelType(23, "Tencent Hunyuan", "hunyuan"),
        ChannelType(24, "Google Gemini", "gemini"),
        ChannelType(25, "Moonshot", "openai"),
        ChannelType(28, "Mistral", "openai"),
        ChannelType(29, "Groq", "openai"),
        ChannelType(30, "Ollama", "openai"),
        ChannelType(31, "Lingyi Wanwu", "openai"),
        ChannelType(32, "StepFun", "openai"),
        ChannelType(33, "AWS Bedrock Claude", "bedrock"),
        ChannelType(35, "Cohere", "cohere"),
        ChannelType(36, "DeepSeek", "openai"),
        ChannelType(39, "Together", "openai"),
        ChannelType(40, "Doubao (Volcengine Ark)", "openai"),
        ChannelType(42, "Google Vertex AI", "vertex"),
        ChannelType(44, "SiliconFlow", "openai"),
        ChannelType(45, "xAI", "openai"),
        ChannelType(1017, "Qwen (DashScope native protocol)", "dashscope"),
    )
}


def channel_type(type_id: int) -> ChannelType | None:
    return CHANNEL_TYPES.get(type_id)


# A One API type whose channels may speak another protocol, chosen by the channel's config
# ``{"protocol": "..."}``: (type, protocol) -> the internal type (>= 1000, numbers One API
# does not use) that names the family serving it. Type 17 stays on DashScope's
# OpenAI-compatible mode unless its config says ``"native"``.
PROTOCOL_VARIANTS: dict[tuple[int, str], int] = {(17, "native"): 1017}


def routed_type(type_id: int, protocol: str | None) -> int:
    """The type a channel is routed by: its own, or the variant its config's protocol picks."""
    return PROTOCOL_VARIANTS.get((type_id, protocol or ""), type_id)


def speaks_websocket(type_id: int) -> bool:
    """Whether channels of this type call their provider over WebSocket."""
    ct = CHANNEL_TYPES.get(type_id)
    return ct is not None and ct.websocket
