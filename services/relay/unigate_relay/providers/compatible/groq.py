"""Groq (https://console.groq.com/docs/openai): OpenAI-style API under ``/openai/v1``. Stream
usage arrives in ``x_groq.usage`` on the last chunk (the one carrying ``finish_reason``)."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=29,
    name="Groq",
    default_base_url="https://api.groq.com/openai/v1",
    stream_usage_path=("x_groq", "usage"),
    default_models=(
        "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant",
        "gemma2-9b-it",
        "deepseek-r1-distill-llama-70b",
    ),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="gsk_...",
    key_pattern=r"^gsk_",
    gen_ai_system="groq",
)
