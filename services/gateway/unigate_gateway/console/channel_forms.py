"""What the console's channel form needs to know per channel type: the key's format and the
default base URL.

Which types exist (and which relay family serves each) is ``unigate.channel_types``; this is
only the form's help text, kept next to the console. The default base URLs are the ones the
relay uses when a channel leaves its base URL empty (``unigate_relay.providers.compatible``
specs; ``tests/unit/test_console_routes.py`` checks they agree) and, for native-protocol
families, the provider's documented endpoint (One API's ``ChannelBaseURLs`` uses the same).
Key formats follow each provider's console and One API's channel form (multi-part keys are
joined with ``|``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from unigate.channel_types import CHANNEL_TYPES


@dataclass(frozen=True, slots=True)
class ChannelForm:
    # What the key field shows as its placeholder: the format a key of this type has.
    key_hint: str
    # A loose check the form warns about (never blocks on): JavaScript RegExp source.
    key_pattern: str = ""
    # Used by the relay when the channel's base URL is empty ("" = the channel must give one).
    base_url: str = ""
    # The key is several values joined with "|", in this order.
    key_parts: tuple[str, ...] = ()
    # What the channel's config JSON may hold, shown under the config field.
    config_hint: str = ""


_GENERIC = ChannelForm(key_hint="API key")

FORMS: dict[int, ChannelForm] = {
    1: ChannelForm("sk-...", r"^sk-", "https://api.openai.com"),
    3: ChannelForm(
        "Azure resource key (32 hex characters)",
        r"^[0-9a-fA-F]{32}$",
        "",
        config_hint='{"api_version": "2024-10-21", "deployments": {"gpt-4o": "my-gpt4o"}}',
    ),
    8: ChannelForm("API key of the OpenAI-compatible service", "", ""),
    14: ChannelForm("sk-ant-...", r"^sk-ant-", "https://api.anthropic.com"),
    15: ChannelForm(
        "APIKey|SecretKey",
        r"^[^|]+\|[^|]+$",
        "https://aip.baidubce.com",
        key_parts=("API Key", "Secret Key"),
    ),
    16: ChannelForm("id.secret", r"^[^.]+\.[^.]+$", "https://open.bigmodel.cn/api/paas/v4"),
    17: ChannelForm(
        "sk-...",
        r"^sk-",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        config_hint='{"protocol": "native"} to use DashScope\'s own protocol',
    ),
    18: ChannelForm(
        "APPID|APISecret|APIKey",
        r"^[^|]+\|[^|]+\|[^|]+$",
        "",
        key_parts=("APPID", "APISecret", "APIKey"),
    ),
    19: ChannelForm("API key", "", "https://ai.360.cn/v1"),
    20: ChannelForm("sk-or-...", r"^sk-or-", "https://openrouter.ai/api/v1"),
    23: ChannelForm(
        "SecretId|SecretKey",
        r"^[^|]+\|[^|]+$",
        "https://hunyuan.tencentcloudapi.com",
        key_parts=("SecretId", "SecretKey"),
    ),
    24: ChannelForm("AIza...", r"^AIza", "https://generativelanguage.googleapis.com"),
    25: ChannelForm("sk-...", r"^sk-", "https://api.moonshot.cn/v1"),
    28: ChannelForm("API key", "", "https://api.mistral.ai/v1"),
    29: ChannelForm("gsk_...", r"^gsk_", "https://api.groq.com/openai/v1"),
    30: ChannelForm("any value (Ollama has no keys)", "", "http://localhost:11434/v1"),
    31: ChannelForm("API key", "", "https://api.lingyiwanwu.com/v1"),
    32: ChannelForm("API key", "", "https://api.stepfun.com/v1"),
    36: ChannelForm("sk-...", r"^sk-", "https://api.deepseek.com"),
    39: ChannelForm("API key", "", "https://api.together.xyz/v1"),
    40: ChannelForm("Ark API key", "", "https://ark.cn-beijing.volces.com/api/v3"),
    44: ChannelForm("sk-...", r"^sk-", "https://api.siliconflow.cn/v1"),
    45: ChannelForm("xai-...", r"^xai-", "https://api.x.ai/v1"),
}


def channel_forms() -> list[dict[str, Any]]:
    """Every channel type a channel can be created with, with its form hints.

    Internal routing variants (ids >= 1000, chosen by a channel's config, not by its type)
    are left out: One API clients never send them.
    """
    out = []
    for t in sorted(CHANNEL_TYPES.values(), key=lambda t: t.id):
        if t.id >= 1000:
            continue
        form = FORMS.get(t.id, _GENERIC)
        fields = {**asdict(form), "key_parts": list(form.key_parts)}
        out.append({"id": t.id, "name": t.name, "family": t.family, **fields})
    return out
